"""Build a paired dataset from a folder of photos: A is derived from the photo, B is the photo.

Kinds of A (train A -> B, the default direction):
* edges:  Canny edges (scikit-image), black lines on white like edges2shoes;
* gray:   the grayscale photo (colorization);
* sketch: a pencil sketch, the "colour dodge" of the gray photo with its blurred negative;
* blur:   a Gaussian blur with radius 1/64 of the shorter side (deblurring);
* lowres: 4x bicubic downscale then upscale back (super-resolution).
Photos are split at random, with a seed, into train/val/test and written one at a time as OUT/SPLIT/NAME.png.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps
from tqdm import tqdm

from pix2pix.data.images import DataError, list_images, load_image

KINDS = ("edges", "gray", "sketch", "blur", "lowres")
SPLITS = ("train", "val", "test")

EDGE_SIGMA = 2.0  # Canny's Gaussian: smaller finds texture, larger only outlines
LOWRES_FACTOR = 4


def make_input(photo: Image.Image, kind: str) -> Image.Image:
    """The A image of `kind` for an RGB `photo` (same size, RGB)."""
    if kind == "edges":
        from skimage.feature import canny

        edges = canny(np.asarray(photo.convert("L"), dtype=np.float64) / 255.0, sigma=EDGE_SIGMA)
        return Image.fromarray(np.where(edges, 0, 255).astype(np.uint8)).convert("RGB")
    if kind == "gray":
        return photo.convert("L").convert("RGB")
    if kind == "sketch":
        gray = photo.convert("L")
        blurred_negative = ImageOps.invert(gray).filter(ImageFilter.GaussianBlur(max(1.0, min(photo.size) / 32)))
        # Colour dodge: flat areas (gray ~ its blur) go white, edges stay dark like pencil strokes.
        dodge = np.asarray(gray, np.float64) * 255.0 / np.maximum(255.0 - np.asarray(blurred_negative, np.float64), 1.0)
        return Image.fromarray(np.clip(dodge, 0, 255).astype(np.uint8)).convert("RGB")
    if kind == "blur":
        return photo.filter(ImageFilter.GaussianBlur(max(1.0, min(photo.size) / 64)))
    if kind == "lowres":
        width, height = photo.size
        small = (max(1, width // LOWRES_FACTOR), max(1, height // LOWRES_FACTOR))
        return photo.resize(small, Image.Resampling.BICUBIC).resize(photo.size, Image.Resampling.BICUBIC)
    raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")


def assign_splits(count: int, ratios: Sequence[float], seed: int) -> list[str]:
    """Split name of each of `count` items: a seeded shuffle cut by the (normalised) train/val/test ratios."""
    if len(ratios) != len(SPLITS) or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError(f"split ratios must be 3 non-negative numbers (train, val, test), got {list(ratios)}")
    cumulative = np.cumsum(ratios) / sum(ratios)
    bounds = [0, *(round(count * c) for c in cumulative)]
    order = list(range(count))
    random.Random(seed).shuffle(order)
    names = [""] * count
    for split, start, stop in zip(SPLITS, bounds, bounds[1:], strict=False):
        for index in order[start:stop]:
            names[index] = split
    return names


def build_pairs(
    photos: Path | str,
    out: Path | str,
    *,
    kind: str,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    size: int | None = None,
    progress: bool = True,
) -> tuple[dict[str, int], list[str]]:
    """Write OUT/SPLIT/NAME.png = A | photo for each photo; returns (pairs per split, skipped-file messages).

    `size` centre-crops each photo to a square and resizes it to size x size; None keeps the photo's size.
    """
    photos, out = Path(photos), Path(out)
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")
    if size is not None and size < 2:
        raise ValueError(f"size must be at least 2, got {size}")
    if not photos.is_dir():
        raise FileNotFoundError(f"{photos}: folder not found")
    if out.is_dir() and any(out.iterdir()):
        raise DataError(f"{out}: folder is not empty; choose a new --out")
    files = list(list_images(photos).values())
    if not files:
        raise DataError(f"{photos}: no images found")
    counts = dict.fromkeys(SPLITS, 0)
    skipped: list[str] = []
    splits = assign_splits(len(files), ratios, seed)
    pending = zip(files, splits, strict=True)
    for path, split in tqdm(pending, total=len(files), desc=f"pairs ({kind})", unit="photo", disable=not progress):
        try:
            photo = load_image(path, 3)
        except DataError as err:
            skipped.append(str(err))
            continue
        if size is not None:
            photo = ImageOps.fit(photo, (size, size), Image.Resampling.LANCZOS)
        pair = np.concatenate([np.asarray(make_input(photo, kind)), np.asarray(photo)], axis=1)
        (out / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pair).save(out / split / f"{path.stem}.png")
        counts[split] += 1
    return {split: count for split, count in counts.items() if count}, skipped
