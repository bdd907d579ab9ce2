"""CIE Lab conversions for L -> ab colorization (`--color-space lab`, pix2pix-tensorflow's `lab_colorization`).

The network sees the lightness L (1 channel) and predicts the two colour channels ab; the output image
is L (from the input) + ab (predicted), converted back to RGB. Tensors are scaled to [-1, 1] like every
other pix2pix tensor: L in [0, 100] -> (L / 50) - 1, and ab (about [-110, 110] for sRGB colours) / 110.
Needs scikit-image (the `data` extra).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
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


def lab_to_tensors(lab: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W, 3) Lab -> L (1, H, W) and ab (2, H, W) float32 tensors in [-1, 1]."""
    chw = torch.from_numpy(np.ascontiguousarray(lab.transpose(2, 0, 1), dtype=np.float32))
    return chw[:1] / L_SCALE - 1.0, chw[1:] / AB_SCALE


def tensors_to_lab(lightness: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
    """L (1, H, W) and ab (2, H, W) in [-1, 1] -> (H, W, 3) float64 Lab; the inverse of `lab_to_tensors`."""
    lab = torch.cat([(lightness.detach().float().cpu() + 1.0) * L_SCALE, ab.detach().float().cpu() * AB_SCALE])
    return lab.permute(1, 2, 0).numpy().astype(np.float64)


def image_to_lab_tensors(image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    """A PIL image (any mode) -> (L (1, H, W), ab (2, H, W)) in [-1, 1]: the source and target of colorization."""
    return lab_to_tensors(rgb_to_lab(np.asarray(image.convert("RGB"))))


def lab_tensors_to_image(lightness: torch.Tensor, ab: torch.Tensor) -> Image.Image:
    """L (1, H, W) and ab (2, H, W) in [-1, 1] -> RGB PIL image."""
    return Image.fromarray(lab_to_rgb(tensors_to_lab(lightness, ab)))


def image_to_gray(image: Image.Image) -> Image.Image:
    """The image's L alone (zero ab) as an RGB image: exactly what a colorization model sees."""
    lightness, ab = image_to_lab_tensors(image)
    return lab_tensors_to_image(lightness, torch.zeros_like(ab))


def check_color_space(color_space: str, *, in_channels: int, out_channels: int) -> None:
    """Lab runs translate L (1 channel) into ab (2 channels); any other pairing is a configuration error."""
    if color_space not in COLOR_SPACES:
        raise ValueError(f"unknown color space {color_space!r}; allowed: {', '.join(COLOR_SPACES)}")
    if color_space == "lab" and (in_channels, out_channels) != (1, 2):
        raise ValueError(
            f"color space lab translates L into ab, so it needs in_channels 1 and out_channels 2 "
            f"(--in-channels 1 --out-channels 2), got {in_channels} and {out_channels}"
        )


def lab_batch_to_rgb(lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) and ab (B, 2, H, W) in [-1, 1] -> RGB (B, 3, H, W) in [-1, 1], for grids and reports."""
    if lightness.dim() != 4 or lightness.shape[1] != 1 or ab.shape != (lightness.shape[0], 2, *lightness.shape[2:]):
        raise ValueError(
            f"expected L (B, 1, H, W) and ab (B, 2, H, W), got {tuple(lightness.shape)} and {tuple(ab.shape)}"
        )
    images = [lab_to_rgb(tensors_to_lab(l_item, ab_item)) for l_item, ab_item in zip(lightness, ab, strict=True)]
    rgb = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()  # (B, 3, H, W) in [0, 255]
    return (rgb / 127.5 - 1.0).to(lightness.device)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB values, got dtype {rgb.dtype}")
    return rgb
