"""CIE Lab conversions for L -> ab colorization (`--color-space lab`, pix2pix-tensorflow's `lab_colorization`).

The network sees the lightness L (1 channel) and predicts the two colour channels ab; the output image
is L (from the input) + ab (predicted), converted back to RGB. Tensors are scaled to [-1, 1] like every
other pix2pix tensor: L in [0, 100] -> (L / 50) - 1, and ab (about [-110, 110] for sRGB colours) / 110.
Needs scikit-image (the `data` extra); numpy only, no torch (the tensor forms are in transforms.py).
"""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image

COLOR_SPACES = ("rgb", "lab")
L_SCALE = 50.0  # L in [0, 100]
AB_SCALE = 110.0  # |a|, |b| stay below ~108 for sRGB colours


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 sRGB -> (H, W, 3) float64 Lab (D65)."""
    from skimage.color import rgb2lab

    return rgb2lab(_check_rgb(rgb))


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """(H, W, 3) Lab -> (H, W, 3) uint8 sRGB; colours outside the sRGB gamut are clipped."""
    from skimage.color import lab2rgb

    with warnings.catch_warnings():
        # Predicted ab can lie outside the gamut; skimage warns about every such pixel, clipping is what we want.
        warnings.simplefilter("ignore", UserWarning)
        rgb = lab2rgb(np.asarray(lab, dtype=np.float64))
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def image_to_lab_array(image: Image.Image) -> np.ndarray:
    """A PIL image (any mode) -> (3, H, W) float32: L / 50 - 1 and ab / 110, both in [-1, 1]."""
    lab = rgb_to_lab(np.asarray(image.convert("RGB"))).astype(np.float32).transpose(2, 0, 1)
    return np.concatenate([lab[:1] / L_SCALE - 1.0, lab[1:] / AB_SCALE])


def lab_array_to_image(lab: np.ndarray) -> Image.Image:
    """The inverse of `image_to_lab_array`: (3, H, W) scaled L, ab -> RGB PIL image."""
    unscaled = np.concatenate([(lab[:1] + 1.0) * L_SCALE, lab[1:] * AB_SCALE]).astype(np.float64)
    return Image.fromarray(lab_to_rgb(unscaled.transpose(1, 2, 0)))


def image_to_gray(image: Image.Image) -> Image.Image:
    """The image's L alone (zero ab) as an RGB image: exactly what a colorization model sees."""
    lab = image_to_lab_array(image)
    lab[1:] = 0.0
    return lab_array_to_image(lab)


def check_color_space(color_space: str, *, in_channels: int, out_channels: int) -> None:
    """Lab runs translate L (1 channel) into ab (2 channels); any other pairing is a configuration error."""
    if color_space not in COLOR_SPACES:
        raise ValueError(f"unknown color space {color_space!r}; allowed: {', '.join(COLOR_SPACES)}")
    if color_space == "lab" and (in_channels, out_channels) != (1, 2):
        raise ValueError(
            f"color space lab translates L into ab, so it needs in_channels 1 and out_channels 2 "
            f"(--in-channels 1 --out-channels 2), got {in_channels} and {out_channels}"
        )


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB values, got dtype {rgb.dtype}")
    return rgb
