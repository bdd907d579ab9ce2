"""Paired preprocessing (resize, random crop, flip) following the official pix2pix code.

Training jitter is sampled once per pair (`sample_jitter`) and then applied to both images
(`apply_preprocess`), so source and target stay pixel-aligned.
"""

from __future__ import annotations

import random
import typing
from dataclasses import dataclass
from typing import TypedDict

from PIL import Image

from pix2pix.config import CROPPING, Preprocess

PREPROCESS = typing.get_args(Preprocess)  # the config's choices; CROPPING: those that crop

_FLIP = Image.Transpose.FLIP_LEFT_RIGHT


@dataclass(frozen=True)
class Jitter:
    """Where to crop (top-left corner, in the resized image) and whether to mirror."""

    crop_x: int
    crop_y: int
    flip: bool


class PreprocessOptions(TypedDict):
    """The keyword arguments that `sample_jitter`, `apply_preprocess` and `test_time_size` share."""

    preprocess: str
    load_size: int
    crop_size: int


def check_preprocess(preprocess: str, *, load_size: int, crop_size: int, size_multiple: int = 1) -> None:
    """Raise ValueError if the preprocessing options cannot work together."""
    if preprocess not in PREPROCESS:
        raise ValueError(f"unknown preprocess {preprocess!r}; allowed: {', '.join(PREPROCESS)}")
    for name, value in (("load_size", load_size), ("crop_size", crop_size), ("size_multiple", size_multiple)):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if preprocess in ("resize_and_crop", "scale_width_and_crop") and crop_size > load_size:
        raise ValueError(
            f"--crop-size {crop_size} is larger than --load-size {load_size}; "
            f"--preprocess {preprocess} resizes to --load-size and then crops --crop-size"
        )
    if preprocess in CROPPING and crop_size % size_multiple:
        raise ValueError(
            f"--crop-size {crop_size} is not a multiple of {size_multiple}, the generator's stride (the factor "
            "its downsamplings shrink an image by); choose a multiple, or --generator unet (its depth follows the size)"
        )


def sample_jitter(
    rng: random.Random,
    size: tuple[int, int],
    *,
    preprocess: str,
    load_size: int,
    crop_size: int,
    flip: bool,
) -> Jitter:
    """Draw a random crop offset for an image of `size` (width, height) and a coin-flip mirror."""
    check_preprocess(preprocess, load_size=load_size, crop_size=crop_size)
    width, height = compute_resized_size(size, preprocess=preprocess, load_size=load_size, crop_size=crop_size)
    crop_x = crop_y = 0
    if preprocess in CROPPING:
        if width < crop_size or height < crop_size:
            raise ValueError(
                f"image of {width}x{height} is smaller than crop_size {crop_size} (preprocess {preprocess!r})"
            )
        crop_x = rng.randint(0, width - crop_size)
        crop_y = rng.randint(0, height - crop_size)
    return Jitter(crop_x, crop_y, flip and rng.random() < 0.5)


def apply_preprocess(
    image: Image.Image,
    jitter: Jitter,
    *,
    preprocess: str,
    load_size: int,
    crop_size: int,
    size_multiple: int,
) -> Image.Image:
    """Resize, crop and flip `image` as `jitter` says; one jitter for A and B keeps them aligned."""
    check_preprocess(preprocess, load_size=load_size, crop_size=crop_size, size_multiple=size_multiple)
    width, height = compute_resized_size(image.size, preprocess=preprocess, load_size=load_size, crop_size=crop_size)
    if preprocess not in CROPPING:
        # Nothing crops to a fixed size here, so make each side fit the generator's stride.
        width, height = round_to_multiple(width, size_multiple), round_to_multiple(height, size_multiple)
    if (width, height) != image.size:
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    if preprocess in CROPPING:
        right, bottom = jitter.crop_x + crop_size, jitter.crop_y + crop_size
        if jitter.crop_x < 0 or jitter.crop_y < 0 or right > width or bottom > height:
            raise ValueError(
                f"crop ({jitter.crop_x}, {jitter.crop_y}) of size {crop_size} does not fit in a {width}x{height} image"
            )
        image = image.crop((jitter.crop_x, jitter.crop_y, right, bottom))
    if jitter.flip:
        image = image.transpose(_FLIP)
    return image


def compute_resized_size(size: tuple[int, int], *, preprocess: str, load_size: int, crop_size: int) -> tuple[int, int]:
    """Size (width, height) of an image of `size` after the resize step, before any crop."""
    width, height = size
    if preprocess == "resize_and_crop":
        return load_size, load_size
    if preprocess in ("scale_width", "scale_width_and_crop"):
        # As the official code: keep the aspect, but never fall below a crop's height.
        return load_size, max(int(load_size * height / width), crop_size)
    return width, height


def test_time_size(
    size: tuple[int, int], *, preprocess: str, load_size: int, crop_size: int, size_multiple: int
) -> tuple[int, int]:
    """(width, height) an image of `size` is translated at: the training preprocessing without its random
    parts. resize_and_crop trains on crops of a square image, so it sees the crop-size square; crop and
    none keep the image's own scale; the scale_width modes scale the width to load_size. Sides that are
    not fixed are rounded to `size_multiple` (the generator's stride)."""
    if preprocess == "resize_and_crop":
        return crop_size, crop_size
    if preprocess in ("scale_width", "scale_width_and_crop"):
        size = compute_resized_size(size, preprocess="scale_width", load_size=load_size, crop_size=crop_size)
    return round_to_multiple(size[0], size_multiple), round_to_multiple(size[1], size_multiple)


def round_to_multiple(value: int, multiple: int) -> int:
    """Nearest multiple of `multiple` to `value` (halves round up), and at least `multiple`."""
    return max(multiple, (value + multiple // 2) // multiple * multiple)
