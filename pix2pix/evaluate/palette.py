"""`--palette detect`: the class colours of a dataset's label maps, found in its training pairs.

Label maps come as JPEG files, so each class colour arrives as a cloud of noisy values, and region
borders hold blends of two classes (chroma subsampling mixes neighbouring pixels). Only pixels inside
flat regions are counted: blends live on borders, and a label map is mostly flat regions. Their colours
are the peaks of a coarse 3-D histogram, each refined to the median of the pixels near it. A label map's
flat pixels nearly all lie near a few colours; a photo's are spread out, so a photo is reported as not a
label map instead of turning into a palette of hundreds of classes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pix2pix.cache import cache_home
from pix2pix.data.layout import find_pairs, load_pair
from pix2pix.evaluate.fcn_score import Palette

SAMPLE_IMAGES = 100  # pairs read, a seeded sample: enough for rare classes, a second or two
SAMPLE_GRID = 64  # about 64 x 64 pixels looked at per image, picked on a grid (no resampling, so no blends)
FLAT_SPREAD = 12  # max - min of each channel over a 3x3 window: inside a JPEG region, not across a border
BIN_WIDTH = 16  # 16 bins per channel; a noisy class colour fills one or two per channel
CLUSTER_RADIUS = 24.0  # RGB distance: JPEG noise of a flat region stays inside, distinct classes lie further
REFINE_STEPS = 3  # median shifts from the bin centre to the colour; one or two already converge
MIN_CLASS_SHARE = 0.001  # of the flat pixels: keeps rare classes (facades' pillar: 0.5%), drops stray blends
MIN_COVERAGE = 0.9  # of the flat pixels near a colour: facades label maps 1.00, their photos 0.61, smooth noise 0.7
MAX_CLASSES = 64  # more distinct colours than this is a picture, not a class code


@dataclass(frozen=True)
class ColourClusters:
    """Colours found in a set of pixels, most frequent first, and how much of them they explain."""

    colors: np.ndarray  # (K, 3) uint8
    shares: np.ndarray  # (K,) share of the pixels near each colour
    coverage: float  # share of the pixels near any of the colours

    @property
    def is_label_map(self) -> bool:
        return 2 <= len(self.colors) <= MAX_CLASSES and self.coverage >= MIN_COVERAGE

    def describe(self) -> str:
        return f"{len(self.colors)} colours cover {self.coverage:.0%} of the flat pixels"


@dataclass(frozen=True)
class DetectedPalette:
    """A palette found in a dataset, and where: the side of the pairs holding the label maps."""

    palette: Palette
    label_side: str  # "A" or "B"
    n_images: int  # pairs sampled


def sample_flat_pixels(image: np.ndarray, grid: int = SAMPLE_GRID) -> np.ndarray:
    """Colours of the pixels inside flat regions, on a grid of about grid x grid points. (N, 3) uint8."""
    stride = max(1, min(image.shape[:2]) // grid)
    windows = sliding_window_view(image.astype(np.int16), (3, 3), axis=(0, 1))[::stride, ::stride]  # (h, w, 3, 3, 3)
    spread = (windows.max(axis=(-2, -1)) - windows.min(axis=(-2, -1))).max(-1)  # (h, w)
    centres = windows[..., 1, 1]  # (h, w, 3): the pixel each window is centred on
    return centres[spread <= FLAT_SPREAD].astype(np.uint8)


def find_nearest(pixels: np.ndarray, colors: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Index of each pixel's nearest colour and the distance to it; one colour at a time, so memory stays O(N)."""
    nearest = np.zeros(len(pixels), np.int64)
    distance = np.full(len(pixels), np.inf, np.float32)
    for index, color in enumerate(colors):
        d = np.linalg.norm(pixels - color, axis=1)
        closer = d < distance
        nearest[closer], distance[closer] = index, d[closer]
    return nearest, distance


def find_colour_clusters(pixels: np.ndarray) -> ColourClusters:
    """The colours the (N, 3) pixels gather around: histogram peaks, refined, merged, rare ones dropped."""
    pixels = pixels.astype(np.float32)
    bins = 256 // BIN_WIDTH
    cells = (pixels // BIN_WIDTH).astype(np.int64)
    counts = np.bincount((cells[:, 0] * bins + cells[:, 1]) * bins + cells[:, 2], minlength=bins**3)
    counts = counts.reshape(bins, bins, bins)
    # a peak: a bin holding at least as many pixels as each of its 26 neighbours, with enough pixels
    # around it (a colour on a bin edge spreads its pixels over up to 8 bins)
    neighbourhoods = sliding_window_view(np.pad(counts, 1), (3, 3, 3))  # (bins, bins, bins, 3, 3, 3)
    is_peak = counts == neighbourhoods.max(axis=(-3, -2, -1))
    peaks = np.argwhere(
        is_peak & (counts > 0) & (neighbourhoods.sum(axis=(-3, -2, -1)) >= MIN_CLASS_SHARE * len(pixels))
    )
    colors = (peaks + 0.5) * BIN_WIDTH
    if not 0 < len(peaks) <= 4 * MAX_CLASSES:  # none, or far too many for a class code: not worth refining
        shares = counts[tuple(peaks.T)] / max(1, len(pixels))
        return ColourClusters(colors.astype(np.uint8), shares, float(shares.sum()))
    # move each peak to the median of the pixels around it: the median ignores blends on one side
    for _ in range(REFINE_STEPS):
        colors = np.stack([median_near(pixels, color) for color in colors])
    # a noisy colour split by a bin edge gives two peaks that meet at one median: keep the better supported
    support = [(np.linalg.norm(pixels - color, axis=1) < CLUSTER_RADIUS).sum() for color in colors]
    kept: list[np.ndarray] = []
    for index in np.argsort(support)[::-1]:
        if all(np.linalg.norm(colors[index] - other) >= CLUSTER_RADIUS for other in kept):
            kept.append(colors[index])
    nearest, distance = find_nearest(pixels, kept)
    near = distance < CLUSTER_RADIUS
    shares = np.bincount(nearest[near], minlength=len(kept)) / len(pixels)
    order = [index for index in np.argsort(shares)[::-1] if shares[index] >= MIN_CLASS_SHARE]
    # each colour's final value: the median of the pixels that are nearest to it
    final = [np.median(pixels[near & (nearest == index)], axis=0) for index in order]
    return ColourClusters(
        np.round(np.reshape(final, (-1, 3))).astype(np.uint8), shares[order], float(shares[order].sum())
    )


def median_near(pixels: np.ndarray, color: np.ndarray) -> np.ndarray:
    near = pixels[np.linalg.norm(pixels - color, axis=1) < CLUSTER_RADIUS]
    return np.median(near, axis=0) if len(near) else color


def detect_dataset_palette(
    root: Path, split: str = "train", *, max_images: int = SAMPLE_IMAGES, seed: int = 0
) -> DetectedPalette:
    """Find the label colours in a seeded sample of `split`'s pairs, most frequent first.

    The label side is chosen the way `--fcn-score auto` chooses it with a given palette: the side whose
    pixels the colours explain best, if they explain enough of them.
    """
    pairs = find_pairs(root, split)
    if not pairs:
        raise ValueError(f"{root / split}: no pairs to detect the label colours in")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(pairs), size=min(max_images, len(pairs)), replace=False))
    pixels: dict[str, list[np.ndarray]] = {"A": [], "B": []}
    for index in chosen:
        a, b = load_pair(pairs[index], direction="AtoB", in_channels=3, out_channels=3)
        pixels["A"].append(sample_flat_pixels(np.asarray(a)))
        pixels["B"].append(sample_flat_pixels(np.asarray(b)))
    clusters = {side: find_colour_clusters(np.concatenate(found)) for side, found in pixels.items()}
    candidates = [side for side, found in clusters.items() if found.is_label_map]
    if not candidates:
        sides = "; ".join(f"side {side}: {found.describe()}" for side, found in clusters.items())
        raise ValueError(
            f"{root / split}: not a label map on either side of the pairs, so no palette can be detected "
            f"(in {len(chosen)} pairs: {sides}; in a label map at most {MAX_CLASSES} colours cover "
            f"{MIN_COVERAGE:.0%} or more); give --palette facades or a JSON file, or --fcn-score off"
        )
    side = max(candidates, key=lambda s: clusters[s].coverage)
    colors = tuple((int(r), int(g), int(b)) for r, g, b in clusters[side].colors)
    palette = Palette(tuple(f"class{i}" for i in range(len(colors))), colors)
    return DetectedPalette(palette, side, len(chosen))


def save_detected_palette(root: Path, palette: Palette) -> Path:
    """Write `palette` into the cache as {"name": [r, g, b], ...}, the format `--palette FILE` reads, so it
    can be renamed, edited and reused. The name holds a hash of the dataset's location: the cache folder is
    shared by all datasets."""
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    path = cache_home() / "palettes" / f"detected-palette-{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {name: list(color) for name, color in zip(palette.names, palette.colors)}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
