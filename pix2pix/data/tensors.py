"""Images and Lab arrays as torch tensors: the (C, H, W) float32 form in [-1, 1] the networks train on.

The conversions themselves are numpy (pix2pix.data.images, pix2pix.data.lab), shared with the torch-free
ONNX path; these are their tensor faces.
"""

from __future__ import annotations

import torch
from PIL import Image

from pix2pix.data.images import array_to_image, image_to_array
from pix2pix.data.lab import image_to_lab_array, lab_array_to_image


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """8-bit "L"/"RGB" image -> float32 (C, H, W) tensor in [-1, 1]."""
    return torch.from_numpy(image_to_array(image))


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """(C, H, W) tensor in [-1, 1] with C = 1 or 3 -> "L"/"RGB" image (values clamped)."""
    return array_to_image(tensor.detach().float().cpu().numpy())


def image_to_lab_tensors(image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    """A PIL image (any mode) -> (L (1, H, W), ab (2, H, W)) in [-1, 1]: the source and target of colorization."""
    lab = torch.from_numpy(image_to_lab_array(image))
    return lab[:1], lab[1:]


def lab_tensors_to_image(lightness: torch.Tensor, ab: torch.Tensor) -> Image.Image:
    """L (1, H, W) and ab (2, H, W) in [-1, 1] -> RGB PIL image."""
    return lab_array_to_image(torch.cat([lightness, ab]).detach().float().cpu().numpy())


def lab_batch_to_rgb(lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) and ab (B, 2, H, W) in [-1, 1] -> RGB (B, 3, H, W) in [-1, 1], for grids and reports."""
    if lightness.dim() != 4 or lightness.shape[1] != 1 or ab.shape != (lightness.shape[0], 2, *lightness.shape[2:]):
        raise ValueError(
            f"expected L (B, 1, H, W) and ab (B, 2, H, W), got {tuple(lightness.shape)} and {tuple(ab.shape)}"
        )
    images = [image_to_tensor(lab_tensors_to_image(l_item, ab_item)) for l_item, ab_item in zip(lightness, ab)]
    return torch.stack(images).to(lightness.device)
