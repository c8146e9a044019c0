"""Machinery every recipe and the deploy path share: device and precision, checkpoints, moving averages."""
