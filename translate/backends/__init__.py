"""What runs a trained generator: PyTorch for checkpoints, ONNX Runtime and OpenVINO for exports."""
