"""DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout transforms applied to
everything D sees, real and generated alike, in both the D and the G step, so D cannot memorise a small
training set while G still learns the un-augmented images. Opt-in (`--diff-augment`), beyond the paper.

Each transform draws its own random parameters per sample. In a conditional pair, stacked on channels,
the input and the output share every draw: the same shift and the same cut for both, and colour changes
of the same strength applied to each image separately.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TRANSLATION_RATIO = 0.125  # shifts of up to 1/8 of the side, as the paper's default
CUTOUT_RATIO = 0.5  # one zeroed square of half the side


def diff_augment(x: torch.Tensor, policy: str, *, split: int = 0) -> torch.Tensor:
    """`x` (B, C, H, W) through the comma-separated `policy`; channels [:split] and [split:] are two images
    (the input and the output of a conditional pair) for the colour transforms."""
    for name in policy.split(","):
        x = TRANSFORMS[name](x, split)
    return x


def color(x: torch.Tensor, split: int) -> torch.Tensor:
    """Brightness, saturation and contrast, each by a random amount per sample."""
    batch = x.shape[0]
    brightness = torch.rand(batch, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5
    saturation = torch.rand(batch, 1, 1, 1, device=x.device, dtype=x.dtype) * 2
    contrast = torch.rand(batch, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5
    images = [part for part in (x[:, :split], x[:, split:]) if part.shape[1]]
    jittered = []
    for image in images:
        image = image + brightness
        image = (image - image.mean(1, keepdim=True)) * saturation + image.mean(1, keepdim=True)
        mean = image.mean((1, 2, 3), keepdim=True)
        jittered.append((image - mean) * contrast + mean)
    return torch.cat(jittered, 1)


def translation(x: torch.Tensor, split: int) -> torch.Tensor:
    """Shift each sample by up to 1/8 of its size, filling with zeros."""
    batch, _, height, width = x.shape
    max_dy, max_dx = int(height * TRANSLATION_RATIO + 0.5), int(width * TRANSLATION_RATIO + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (batch, 1, 1), device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, (batch, 1, 1), device=x.device)
    rows, columns = pixel_grid(batch, height, width, x.device)
    # index a copy padded by one zero pixel: indices pushed past the edge land on the padding
    rows = (rows + dy + 1).clamp(0, height + 1)
    columns = (columns + dx + 1).clamp(0, width + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    samples = torch.arange(batch, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[samples, rows, columns].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, split: int) -> torch.Tensor:
    """Zero one square of half the size at a random place in each sample."""
    batch, _, height, width = x.shape
    cut_h, cut_w = int(height * CUTOUT_RATIO + 0.5), int(width * CUTOUT_RATIO + 0.5)
    top = torch.randint(0, height + (1 - cut_h % 2), (batch, 1, 1), device=x.device) - cut_h // 2
    left = torch.randint(0, width + (1 - cut_w % 2), (batch, 1, 1), device=x.device) - cut_w // 2
    rows, columns = pixel_grid(batch, height, width, x.device)
    inside = (rows >= top) & (rows < top + cut_h) & (columns >= left) & (columns < left + cut_w)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def pixel_grid(batch: int, height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(height, device=device)[None, :, None].expand(batch, height, width)
    columns = torch.arange(width, device=device)[None, None, :].expand(batch, height, width)
    return rows, columns


TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}
