"""Image-similarity metrics (PSNR, SSIM) over float image batches — **no torch**.

They compare a model's output with a reference output (fp32 vs fp16 / int8 exports, a checkpoint vs its ONNX
export), so they work on the project's model-side convention: ``float`` arrays shaped ``(N, C, H, W)`` with
values in ``[-1, 1]``, hence ``data_range=2`` by default.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr", "ssim"]

# Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error visibility to structural similarity",
# IEEE TIP 2004: an 11x11 Gaussian window with sigma 1.5 and these stabilising constants.
_WINDOW = 11
_SIGMA = 1.5
_K1 = 0.01
_K2 = 0.03


def _as_batches(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64 (N, C, H, W); float64 because SSIM subtracts nearly equal moments."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) arrays, got shape {a.shape}")
    if a.size == 0:
        raise ValueError("expected non-empty images")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 2.0) -> float:
    """Peak signal-to-noise ratio in dB, from the mean squared error over the whole batch; ``inf`` if equal."""
    a, b = _as_batches(a, b)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def _gaussian_kernel(size: int) -> np.ndarray:
    """Normalised 1-D Gaussian taps; the 2-D window is their outer product, so filtering is separable."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    kernel = np.exp(-(x**2) / (2 * _SIGMA**2))
    return kernel / kernel.sum()


def _filter_valid(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local means of (..., H, W) over the 'valid' region (no padding, no border bias)."""
    k = len(kernel)
    rows = np.lib.stride_tricks.sliding_window_view(x, k, axis=-2) @ kernel  # (..., H-k+1, W)
    return np.lib.stride_tricks.sliding_window_view(rows, k, axis=-1) @ kernel  # (..., H-k+1, W-k+1)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 2.0) -> float:
    """Mean structural similarity (Wang et al. 2004) over every image, channel and valid window position.

    Matches ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)`` averaged over images and channels. Images smaller than the 11-pixel window
    use the largest odd window that fits, so tiny test images still get a score.
    """
    a, b = _as_batches(a, b)
    size = min(_WINDOW, *a.shape[-2:])
    size -= 1 - size % 2  # odd, so the window has a centre pixel
    kernel = _gaussian_kernel(size)
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2

    mu_a = _filter_valid(a, kernel)
    mu_b = _filter_valid(b, kernel)
    # Population (not sample) moments: E[xy] - E[x]E[y], as in the paper.
    var_a = _filter_valid(a * a, kernel) - mu_a**2
    var_b = _filter_valid(b * b, kernel) - mu_b**2
    cov = _filter_valid(a * b, kernel) - mu_a * mu_b

    numerator = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    denominator = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(numerator / denominator))
