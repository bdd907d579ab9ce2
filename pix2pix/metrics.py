"""Per-image metrics (L1, PSNR, SSIM) and their means with 95% confidence intervals.

Shared by validation during training and `pix2pix eval`. Images are compared as 8-bit arrays, the
form in which outputs are saved, so the numbers of a training loop (`evaluate_pairs` on tensors) and
of `pix2pix eval` (on PNG files) agree. PSNR and SSIM come from
scikit-image, not from hand-written formulas; SSIM with the settings of its paper (Wang et al. 2004),
which image-translation papers report, not scikit-image's default 7x7 uniform window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

# metric name -> (label in reports, True when higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "l1": ("L1 [-1,1]", False),
    "l1_255": ("L1 [0,255]", False),
    "psnr": ("PSNR (dB)", True),
    "ssim": ("SSIM", True),
}

# Wang et al.'s SSIM: an 11x11 Gaussian window of sigma 1.5 and population (co)variances
SSIM_SETTINGS = "Gaussian window, sigma 1.5 (Wang et al. 2004)"
SSIM_MIN_SIDE = 11  # the window's extent


def to_uint8_array(tensor: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W, C) uint8, rounded exactly as saved images are."""
    values = (tensor.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) * 127.5
    return values.round().to(torch.uint8).permute(1, 2, 0).numpy()


def compute_image_metrics(output: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """L1 (in [0,255] and in [-1,1] units), PSNR and SSIM of two uint8 images of equal shape.

    Arrays are (H, W) or (H, W, C). Identical images have PSNR = inf.
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # slow import: only when used

    if output.shape != target.shape:
        raise ValueError(f"output shape {output.shape} differs from target shape {target.shape}")
    if output.dtype != np.uint8 or target.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {output.dtype} and {target.dtype}")
    if output.ndim == 3 and output.shape[2] == 1:
        output, target = output[:, :, 0], target[:, :, 0]
    if min(output.shape[:2]) < SSIM_MIN_SIDE:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} pixels,"
            f" got {output.shape[1]}x{output.shape[0]}"
        )
    l1_255 = float(np.abs(output.astype(np.float64) - target.astype(np.float64)).mean())
    if l1_255 == 0.0:
        psnr = math.inf  # skimage would warn about the division by zero
    else:
        psnr = float(peak_signal_noise_ratio(target, output, data_range=255))
    ssim = float(
        structural_similarity(
            target,
            output,
            data_range=255,
            channel_axis=2 if output.ndim == 3 else None,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )
    return {"l1": l1_255 / 127.5, "l1_255": l1_255, "psnr": psnr, "ssim": ssim}


def evaluate_pairs(
    outputs: torch.Tensor | Sequence[torch.Tensor], targets: torch.Tensor | Sequence[torch.Tensor]
) -> dict[str, float]:
    """Mean L1 ([-1,1] and [0,255] units), PSNR and SSIM over pairs of (C, H, W) tensors in [-1, 1].

    `outputs` and `targets` are (B, C, H, W) batches or sequences of (C, H, W) tensors (sizes may
    differ between pairs). For validation during training: quantised to 8 bits like a saved image.
    """
    if len(outputs) != len(targets):
        raise ValueError(f"{len(outputs)} outputs but {len(targets)} targets")
    if len(outputs) == 0:
        raise ValueError("no images to evaluate")
    rows = [compute_image_metrics(to_uint8_array(o), to_uint8_array(t)) for o, t in zip(outputs, targets)]
    return {name: float(np.mean([row[name] for row in rows])) for name in METRICS}


def compute_mean_ci(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean and its two-sided confidence interval from Student's t (n - 1 degrees of freedom).

    With fewer than two values, or any infinite value (PSNR of identical images), the interval is nan.
    """
    from scipy import stats  # a dependency of scikit-image

    if not 0 < confidence < 1:
        raise ValueError(f"confidence is a fraction, e.g. 0.95 for 95%, got {confidence!r}")
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("no values to summarise")
    mean = float(array.mean())
    if array.size < 2 or not np.isfinite(array).all():
        return {"mean": mean, "ci_low": math.nan, "ci_high": math.nan, "n": int(array.size)}
    half = float(stats.t.ppf(0.5 + confidence / 2, array.size - 1) * array.std(ddof=1) / math.sqrt(array.size))
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": int(array.size)}


def summarize_rows(rows: Sequence[Mapping[str, float]], names: Sequence[str]) -> dict[str, dict[str, float]]:
    """{metric: {mean, ci_low, ci_high, n}} for each of `names` over per-image rows."""
    return {name: compute_mean_ci([row[name] for row in rows]) for name in names}
