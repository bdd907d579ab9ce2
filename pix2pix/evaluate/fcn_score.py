"""FCN-score (the paper's protocol): how well a segmenter trained on real photos parses generated ones.

For datasets whose one side is a colour-coded label map (facades, cityscapes). Labels are recovered
from the (JPEG-noisy) colours by the nearest palette colour; the palette is built in, read from a JSON
file, or detected from the data (palette.py). A compact segmentation network is trained
once on the real photos of the training split (photo -> labels, at a reduced resolution) and cached in
the cache folder (pix2pix.cache); it then labels the generated photos and the real test photos (the upper bound), and
both are scored against the test label maps: per-pixel accuracy, per-class accuracy and class IoU.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm import tqdm

from pix2pix.atomic import write_atomically
from pix2pix.cache import cache_home, taking_turns
from pix2pix.data.layout import find_pairs, load_pair
from pix2pix.data.synthetic import SYNTHETIC_PALETTE

# A label-map pixel lies within this RGB distance of a palette colour unless JPEG ringing or resizing
# blurred it; on the real facades ~85% of label pixels do, and no photo pixel does.
PALETTE_TOLERANCE = 60.0
# Share of pixels within the tolerance above which an image is taken to be a label map.
LABEL_MAP_COVERAGE = 0.5
SEGMENTER_FORMAT = 1  # bump when the network or its training changes, so caches are rebuilt


@dataclass(frozen=True)
class Palette:
    """Class names and their RGB colours, in class-index order."""

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors) or len(self.colors) < 2:
            raise ValueError(f"a palette needs at least 2 classes, each with a name and a colour; got {self}")

    def as_array(self) -> np.ndarray:
        return np.asarray(self.colors, dtype=np.float32)  # (K, 3)


# The CMP Facades classes as rendered in the pix2pix release (colours measured from the data).
FACADES_PALETTE = Palette(tuple(SYNTHETIC_PALETTE), tuple(SYNTHETIC_PALETTE.values()))


def load_palette(spec: str) -> Palette:
    """'facades', or a JSON file: {"name": [r, g, b], ...} or [[r, g, b], ...]."""
    if spec == "facades":
        return FACADES_PALETTE
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"{spec}: palette file not found (use 'facades' or a JSON file)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg})") from error
    entries = list(data.items()) if isinstance(data, dict) else [(f"class{i}", c) for i, c in enumerate(data)]
    colors = []
    for name, color in entries:
        if not (
            isinstance(color, list) and len(color) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in color)
        ):
            raise ValueError(f"{path}: colour of {name!r} must be [r, g, b] with integers 0-255, got {color!r}")
        colors.append(tuple(color))
    return Palette(tuple(str(name) for name, _ in entries), tuple(colors))


def compute_palette_distances(image: np.ndarray, palette: Palette) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W, K) Euclidean RGB distances to each palette colour."""
    pixels = image.reshape(-1, 1, 3).astype(np.float32)
    distances = np.sqrt(((pixels - palette.as_array()[None]) ** 2).sum(-1))
    return distances.reshape(*image.shape[:2], -1)


def recover_labels(image: np.ndarray, palette: Palette) -> np.ndarray:
    """Class index of each pixel of a colour-coded label map: its nearest palette colour. (H, W) int64."""
    return compute_palette_distances(image, palette).argmin(-1)


def measure_palette_coverage(image: np.ndarray, palette: Palette) -> float:
    """Share of pixels within PALETTE_TOLERANCE of a palette colour: ~1 for label maps, ~0 for photos."""
    return float((compute_palette_distances(image, palette).min(-1) < PALETTE_TOLERANCE).mean())


def is_label_map(images: list[np.ndarray], palette: Palette) -> bool:
    """True when the images are, on average, colour-coded with `palette`."""
    return float(np.mean([measure_palette_coverage(image, palette) for image in images])) >= LABEL_MAP_COVERAGE


def find_label_side(root: Path, palette: Palette, split: str = "train", probe: int = 8) -> str | None:
    """'A' or 'B': the side of the dataset's pairs drawn in `palette` colours; None if neither is."""
    pairs = find_pairs(root, split)
    step = max(1, len(pairs) // probe)
    sides: dict[str, list[np.ndarray]] = {"A": [], "B": []}
    for pair in pairs[::step][:probe]:
        a, b = load_pair(pair, direction="AtoB", in_channels=3, out_channels=3)
        sides["A"].append(np.asarray(a))
        sides["B"].append(np.asarray(b))
    coverage = {
        side: float(np.mean([measure_palette_coverage(im, palette) for im in images])) for side, images in sides.items()
    }
    best = max(coverage, key=coverage.__getitem__)
    return best if coverage[best] >= LABEL_MAP_COVERAGE else None


class SegmentationNet(nn.Module):
    """A compact U-Net: `depth` poolings, widths width * 2**level, one logit map per class."""

    def __init__(self, in_channels: int, n_classes: int, width: int = 16, depth: int = 3) -> None:
        super().__init__()
        widths = [width * 2**level for level in range(depth + 1)]
        self.encoders = nn.ModuleList()
        previous = in_channels
        for w in widths:
            self.encoders.append(build_conv_block(previous, w))
            previous = w
        self.decoders = nn.ModuleList(
            build_conv_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth))
        )
        self.classifier = nn.Conv2d(widths[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, encoder in enumerate(self.encoders):
            x = encoder(x if level == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for decoder, skip in zip(self.decoders, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = decoder(torch.cat([x, skip], 1))
        return self.classifier(x)  # (B, K, H, W)


def build_conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


@dataclass(frozen=True)
class SegmenterSettings:
    """How the FCN-score segmenter is trained; all of it goes into the cache key."""

    size: int = 64  # photos and label maps are resized to size x size (`pix2pix eval --fcn-size`)
    iterations: int = 1500
    batch_size: int = 8
    width: int = 16
    lr: float = 5e-3
    seed: int = 0


@dataclass
class Segmenter:
    network: SegmentationNet
    settings: SegmenterSettings
    n_classes: int
    train_accuracy: float  # per-pixel accuracy on the training photos: a sanity check
    path: Path | None = None  # where it is cached


def resize_photo(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def resize_labels(labels: np.ndarray, size: int) -> np.ndarray:
    # nearest neighbour: a label is a class, never an average of classes
    return np.asarray(Image.fromarray(labels.astype(np.uint8)).resize((size, size), Image.Resampling.NEAREST))


def photos_to_tensor(photos: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def load_training_set(
    root: Path, palette: Palette, label_side: str, size: int, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Photos (N, size, size, 3) uint8 and labels (N, size, size) uint8 of the training split."""
    photos, labels = [], []
    for pair in tqdm(find_pairs(root, "train"), desc="reading training photos", disable=not progress, leave=False):
        a, b = load_pair(pair, direction="AtoB", in_channels=3, out_channels=3)
        label_map, photo = (a, b) if label_side == "A" else (b, a)
        photos.append(resize_photo(np.asarray(photo), size))
        labels.append(resize_labels(recover_labels(np.asarray(label_map), palette), size))
    return np.stack(photos), np.stack(labels)


def fingerprint_split(root: Path, split: str) -> list[tuple[str, int, int]]:
    """(name, size, mtime) of every file of the split: a changed dataset gets a new segmenter."""
    paths = [path for pair in find_pairs(root, split) for path in (pair.a_path, pair.b_path) if path is not None]
    return [(str(path.relative_to(root)), path.stat().st_size, path.stat().st_mtime_ns) for path in paths]


def train_segmenter(
    photos: np.ndarray, labels: np.ndarray, n_classes: int, settings: SegmenterSettings, progress: bool = True
) -> Segmenter:
    """Cross-entropy training on random batches with random flips; reproducible from `settings.seed`."""
    with torch.random.fork_rng(devices=[]):  # never shift the caller's RNG
        torch.manual_seed(settings.seed)
        network = SegmentationNet(3, n_classes, width=settings.width)
        generator = torch.Generator().manual_seed(settings.seed)
        optimizer = torch.optim.Adam(network.parameters(), lr=settings.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.iterations)
        images, targets = photos_to_tensor(photos), torch.from_numpy(labels).long()
        network.train()
        bar = tqdm(range(settings.iterations), desc="training FCN-score segmenter", disable=not progress, leave=False)
        for _ in bar:
            index = torch.randint(len(images), (settings.batch_size,), generator=generator)
            x, y = images[index], targets[index]
            flip = torch.rand(settings.batch_size, generator=generator) < 0.5
            x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
            loss = F.cross_entropy(network(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    network.eval()
    predictions = predict_labels(network, photos)
    return Segmenter(network, settings, n_classes, float((predictions == labels).mean()))


@torch.no_grad()
def predict_labels(network: SegmentationNet, photos: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """(N, H, W, 3) uint8 photos -> (N, H, W) predicted class indices."""
    network.eval()
    chunks = [
        network(photos_to_tensor(photos[i : i + batch_size])).argmax(1) for i in range(0, len(photos), batch_size)
    ]
    return torch.cat(chunks).numpy().astype(np.uint8)


def load_or_train_segmenter(
    root: Path, palette: Palette, settings: SegmenterSettings, *, progress: bool = True
) -> Segmenter:
    """The segmenter for this dataset, palette and settings: from the cache, or trained and cached."""
    label_side = find_label_side(root, palette)
    if label_side is None:
        raise ValueError(f"{root}: neither side of the training pairs is a label map in the given palette")
    key = json.dumps(
        {
            "format": SEGMENTER_FORMAT,
            "side": label_side,
            "palette": palette.colors,
            "settings": asdict(settings),
            "files": fingerprint_split(root, "train"),
        },
        sort_keys=True,
    )
    path = cache_home() / "segmenters" / f"segmenter-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
    if path.exists():
        return load_segmenter(path, settings)
    with taking_turns(path):  # two evaluations at once train it once
        if path.exists():
            return load_segmenter(path, settings)
        photos, labels = load_training_set(root, palette, label_side, settings.size, progress)
        segmenter = train_segmenter(photos, labels, len(palette.colors), settings, progress)
        state = {
            "network": segmenter.network.state_dict(),
            "n_classes": segmenter.n_classes,
            "train_accuracy": segmenter.train_accuracy,
            "settings": asdict(settings),
            "palette": [list(colour) for colour in palette.colors],  # --fcn-segmenter checks the palette given
        }
        write_atomically(path, lambda file: torch.save(state, file))  # a cache, not a training checkpoint
    segmenter.path = path
    return segmenter


def load_segmenter_file(path: Path, palette: Palette) -> Segmenter:
    """A segmenter an earlier evaluation trained and cached (CACHE/segmenters/*.pt), with the settings it
    was trained with: runs evaluated on other machines or days are then scored by the same network."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        segmenter = segmenter_from_state(state, SegmenterSettings(**state["settings"]), path)
    except (RuntimeError, KeyError, TypeError, IndexError, AttributeError, pickle.UnpicklingError) as error:
        # the type alone for a file torch cannot read: its refusal of a pickle runs to a page about weights_only
        reason = "" if isinstance(error, pickle.UnpicklingError) else f": {error}"
        raise ValueError(f"{path}: not a segmenter saved by pix2pix eval ({type(error).__name__}{reason})") from None
    colours = [list(colour) for colour in palette.colors]
    saved = [list(colour) for colour in state.get("palette", colours)]  # older files carry only its size
    if saved != colours or segmenter.n_classes != len(colours):
        raise ValueError(f"{path}: a segmenter trained for another palette than the one given (--palette)")
    return segmenter


def load_segmenter(path: Path, settings: SegmenterSettings) -> Segmenter:
    return segmenter_from_state(torch.load(path, map_location="cpu", weights_only=True), settings, path)


def segmenter_from_state(state: dict, settings: SegmenterSettings, path: Path) -> Segmenter:
    network = SegmentationNet(3, state["n_classes"], width=settings.width)
    network.load_state_dict(state["network"])
    return Segmenter(network.eval(), settings, state["n_classes"], state["train_accuracy"], path)


def compute_confusion(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) pixel counts, rows = true class, columns = predicted class."""
    index = truth.astype(np.int64).ravel() * n_classes + predicted.astype(np.int64).ravel()
    return np.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def compute_scores(confusion: np.ndarray) -> dict[str, float]:
    """Per-pixel accuracy, per-class accuracy (classes present) and mean class IoU (classes seen)."""
    true_positive = np.diag(confusion).astype(np.float64)
    truth, predicted = confusion.sum(1), confusion.sum(0)
    union = truth + predicted - true_positive
    present, seen = truth > 0, union > 0
    return {
        "pixel_acc": float(true_positive.sum() / max(1, confusion.sum())),
        "class_acc": float((true_positive[present] / truth[present]).mean()) if present.any() else 0.0,
        "class_iou": float((true_positive[seen] / union[seen]).mean()) if seen.any() else 0.0,
    }


def score_photos(
    segmenter: Segmenter, photos: list[np.ndarray], label_maps: list[np.ndarray], palette: Palette
) -> tuple[dict[str, float], list[float]]:
    """FCN-scores of photos against their colour-coded label maps, and each image's pixel accuracy."""
    size = segmenter.settings.size
    truth = np.stack([resize_labels(recover_labels(label_map, palette), size) for label_map in label_maps])
    predicted = predict_labels(segmenter.network, np.stack([resize_photo(photo, size) for photo in photos]))
    confusion = compute_confusion(truth, predicted, segmenter.n_classes)
    per_image = [float((t == p).mean()) for t, p in zip(truth, predicted)]
    return compute_scores(confusion), per_image


def score_label_maps(
    outputs: list[np.ndarray], targets: list[np.ndarray], palette: Palette
) -> tuple[dict[str, float], list[float]]:
    """For photo -> labels models: the generated label maps scored directly against the real ones."""
    n_classes = len(palette.colors)
    confusion = np.zeros((n_classes, n_classes), np.int64)
    per_image = []
    for output, target in zip(outputs, targets):
        truth, predicted = recover_labels(target, palette), recover_labels(output, palette)
        confusion += compute_confusion(truth, predicted, n_classes)
        per_image.append(float((truth == predicted).mean()))
    return compute_scores(confusion), per_image
