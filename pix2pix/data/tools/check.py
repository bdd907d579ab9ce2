"""Check a dataset before training: counts, sizes, broken files and train/test leakage.

Every pair is decoded once, one at a time; only its fingerprints are kept (a SHA-256 of the decoded
pixels for exact duplicates, and a 64-bit difference hash of each half for near duplicates), so memory
grows with the number of pairs, not their pixels. Duplicates are looked for across splits only: the
same pair in train and test makes test scores meaningless. An unpaired (CycleGAN) layout, trainA/,
trainB/, testA/, ..., is checked image by image, and its duplicates within a domain (trainA against
testA).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from pix2pix.data.images import IMAGE_EXTENSIONS, DataError, load_image, split_pair

HASH_BITS = 128  # a 64-bit difference hash of each half
NEAR_THRESHOLD = 6  # differing bits, of HASH_BITS, for "near duplicate"; 0 finds only pixel-identical thumbnails
_MAX_LISTED = 10
_MATRIX_ELEMENTS = 1 << 22  # bounds the (rows, columns) Hamming-distance block computed at once
_BITS_SET = np.array([bin(byte).count("1") for byte in range(256)], dtype=np.uint8)  # popcount per byte value


@dataclass
class SplitSummary:
    """One split folder; problems are one line each, naming the file."""

    name: str
    layout: str  # "A|B" (side-by-side files), "A/ B/" (two folders) or "images" (one domain, unpaired)
    pairs: int = 0  # decodable, usable pairs (images, in an unpaired layout)
    sizes: Counter[tuple[int, int]] = field(default_factory=Counter)  # size of A (width, height)
    corrupt: list[str] = field(default_factory=list)
    non_images: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # A/B sizes differ, odd widths, names without a partner


@dataclass(frozen=True)
class Duplicate:
    """`second` (a later split) repeats `first` exactly, or nearly at Hamming `distance`."""

    kind: str  # "exact" or "near"
    first: str  # "split/name"
    second: str
    distance: int


@dataclass
class CheckReport:
    root: Path
    splits: list[SplitSummary]
    duplicates: list[Duplicate]
    unpaired: bool = False  # trainA/, trainB/, ...: each split a folder of one domain's images

    @property
    def problems(self) -> list[str]:
        """Why the dataset cannot be trained on as it is (empty when it can)."""
        problems = []
        for name in ("trainA", "trainB") if self.unpaired else ("train",):
            split = next((s for s in self.splits if s.name == name), None)
            if split is None:
                problems.append(f"no {name} split")
            elif not split.pairs:
                problems.append(f"no usable {'images' if self.unpaired else 'pairs'} in {name}")
        corrupt = sum(len(s.corrupt) for s in self.splits)
        if corrupt:
            problems.append(f"{corrupt} corrupt file{'s' * (corrupt != 1)}")
        mismatched = sum(len(s.mismatched) for s in self.splits)
        if mismatched:
            kinds = ("name clash", "name clashes") if self.unpaired else ("A/B problem", "A/B problems")
            problems.append(f"{mismatched} {kinds[mismatched != 1]}")
        return problems

    @property
    def usable(self) -> bool:
        return not self.problems


@dataclass
class _Fingerprints:
    """Per split: names, SHA-256 digests and the (A, B) difference hashes of its pairs."""

    names: list[str] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    hashes: list[tuple[int, int]] = field(default_factory=list)


def check_dataset(root: Path | str, *, near_threshold: int = NEAR_THRESHOLD, progress: bool = True) -> CheckReport:
    """Scan every split folder of `root` (see the module docstring)."""
    root = Path(root)
    if not 0 <= near_threshold <= HASH_BITS:
        raise ValueError(f"the near-duplicate threshold counts hash bits: 0 to {HASH_BITS}, got {near_threshold}")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    split_dirs = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=_split_order)
    # a half-made unpaired layout too, so that its verdict names the missing domain
    if not (root / "train").is_dir() and ((root / "trainA").is_dir() or (root / "trainB").is_dir()):
        return _check_unpaired(root, split_dirs, near_threshold, progress=progress)
    summaries, prints = [], []
    for split_dir in split_dirs:
        summary, fingerprints = _scan_split(split_dir, progress=progress)
        summaries.append(summary)
        prints.append(fingerprints)
    return CheckReport(root, summaries, _find_duplicates(prints, near_threshold))


def _check_unpaired(root: Path, folders: list[Path], near_threshold: int, *, progress: bool) -> CheckReport:
    """SPLITA/ and SPLITB/ folders of single images; duplicates are looked for within each domain, across
    its splits (a training photo again in testB), not between domains, which are different images."""
    domains = [folder for folder in folders if folder.name.endswith(("A", "B"))]
    # trainA, trainB, valA, ...: in the paired splits' order
    domains.sort(key=lambda folder: (*_split_order(folder.with_name(folder.name[:-1])), folder.name))
    scanned = [_scan_images(folder, progress=progress) for folder in domains]
    duplicates = []
    for domain in ("A", "B"):
        prints = [fingerprints for folder, (_, fingerprints) in zip(domains, scanned) if folder.name.endswith(domain)]
        duplicates += _find_duplicates(prints, near_threshold)
    return CheckReport(root, [summary for summary, _ in scanned], duplicates, unpaired=True)


def format_check_report(report: CheckReport) -> str:
    """The table of splits, then the problems and duplicates found, then the verdict."""
    header = ("split", "layout", "pairs", "A size", "corrupt", "non-image", "A/B problems")
    if report.unpaired:
        header = ("split", "layout", "images", "size", "corrupt", "non-image", "name clashes")
    rows = [
        (
            s.name,
            s.layout,
            str(s.pairs),
            _describe_sizes(s.sizes),
            str(len(s.corrupt)),
            str(len(s.non_images)),
            str(len(s.mismatched)),
        )
        for s in report.splits
    ]
    lines = [f"dataset {report.root}", *_format_table(header, rows)]
    for title, items in (
        ("corrupt or unreadable files", [line for s in report.splits for line in s.corrupt]),
        (header[-1], [line for s in report.splits for line in s.mismatched]),
        ("non-image files (ignored by training)", [line for s in report.splits for line in s.non_images]),
        ("duplicates across splits", [_describe_duplicate(d) for d in report.duplicates]),
    ):
        if items:
            lines.append(f"{title} ({len(items)}):")
            lines += [f"  {item}" for item in items[:_MAX_LISTED]]
            if len(items) > _MAX_LISTED:
                lines.append(f"  +{len(items) - _MAX_LISTED} more")
    lines.append("usable" if report.usable else f"UNUSABLE: {'; '.join(report.problems)}")
    return "\n".join(lines)


def compute_difference_hash(image: Image.Image) -> int:
    """64-bit dHash: is each pixel of a 9x8 grayscale thumbnail brighter than its left neighbour?"""
    thumbnail = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
    bits = thumbnail[:, 1:] > thumbnail[:, :-1]  # (8, 8)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _scan_split(split_dir: Path, *, progress: bool) -> tuple[SplitSummary, _Fingerprints]:
    a_dir, b_dir = split_dir / "A", split_dir / "B"
    two_folders = a_dir.is_dir() and b_dir.is_dir()
    summary = SplitSummary(split_dir.name, "A/ B/" if two_folders else "A|B")
    fingerprints = _Fingerprints()
    if two_folders:
        a_files, b_files = _list_files(a_dir, summary), _list_files(b_dir, summary)
        for stem in sorted(a_files.keys() ^ b_files.keys()):
            lonely = a_files.get(stem) or b_files[stem]
            summary.mismatched.append(f"{lonely}: no file named {stem}.* in {'B' if stem in a_files else 'A'}/")
        items: list[tuple[str, Path, Path | None]] = [
            (stem, a_files[stem], b_files[stem]) for stem in sorted(a_files.keys() & b_files.keys())
        ]
    else:  # A|B: each file holds the whole pair, so there is no B path
        items = [(stem, path, None) for stem, path in sorted(_list_files(split_dir, summary).items())]
    for stem, a_path, b_path in tqdm(items, desc=f"check {split_dir.name}", unit="pair", disable=not progress):
        pair = _load_checked_pair(a_path, b_path, summary)
        if pair is None:
            continue
        a, b = pair
        summary.pairs += 1
        summary.sizes[a.size] += 1
        digest = hashlib.sha256()
        for image in (a, b):
            digest.update(f"{image.size}".encode())
            digest.update(image.tobytes())
        fingerprints.names.append(f"{split_dir.name}/{stem}")
        fingerprints.digests.append(digest.digest())
        fingerprints.hashes.append((compute_difference_hash(a), compute_difference_hash(b)))
    return summary, fingerprints


def _scan_images(folder: Path, *, progress: bool) -> tuple[SplitSummary, _Fingerprints]:
    """One domain's folder of an unpaired layout; each image fingerprinted as a pair of itself, so a
    near duplicate is `threshold` of HASH_BITS bits, as for pairs."""
    summary, fingerprints = SplitSummary(folder.name, "images"), _Fingerprints()
    files = sorted(_list_files(folder, summary).items())
    for stem, path in tqdm(files, desc=f"check {folder.name}", unit="image", disable=not progress):
        try:
            image = load_image(path, 3)
        except DataError as err:
            summary.corrupt.append(str(err))
            continue
        summary.pairs += 1
        summary.sizes[image.size] += 1
        fingerprints.names.append(f"{folder.name}/{stem}")
        fingerprints.digests.append(hashlib.sha256(f"{image.size}".encode() + image.tobytes()).digest())
        difference_hash = compute_difference_hash(image)
        fingerprints.hashes.append((difference_hash, difference_hash))
    return summary, fingerprints


def _list_files(folder: Path, summary: SplitSummary) -> dict[str, Path]:
    """Image files of `folder` by stem; other files are noted in `summary.non_images`."""
    images: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            summary.non_images.append(str(path))
        elif path.stem in images:
            summary.mismatched.append(f"{path}: {images[path.stem].name} has the same name; keep one")
        else:
            images[path.stem] = path
    return images


def _load_checked_pair(
    a_path: Path, b_path: Path | None, summary: SplitSummary
) -> tuple[Image.Image, Image.Image] | None:
    """Decode a pair as RGB (A, B), or note why it cannot be used and return None."""
    try:
        a = load_image(a_path, 3)
        b = load_image(b_path, 3) if b_path is not None else None
    except DataError as err:
        summary.corrupt.append(str(err))
        return None
    if b is None:
        try:
            return split_pair(a, a_path)
        except DataError as err:  # odd width
            summary.mismatched.append(str(err))
            return None
    if a.size != b.size:
        summary.mismatched.append(f"{a_path} is {a.size[0]}x{a.size[1]} but {b_path} is {b.size[0]}x{b.size[1]}")
        return None
    return a, b


def _find_duplicates(prints: list[_Fingerprints], near_threshold: int) -> list[Duplicate]:
    """For each pair of a later split, its first exact (else near) duplicate in an earlier split."""
    duplicates = []
    first_seen: dict[bytes, tuple[int, str]] = {}
    for index, fingerprints in enumerate(prints):
        for name, digest in zip(fingerprints.names, fingerprints.digests, strict=True):
            first_index, first_name = first_seen.setdefault(digest, (index, name))
            if first_index != index:
                duplicates.append(Duplicate("exact", first_name, name, 0))
    exact = {d.second for d in duplicates}
    for later in range(len(prints)):
        for earlier in range(later):
            duplicates += _find_near(prints[earlier], prints[later], near_threshold, exact)
    return duplicates


def _find_near(earlier: _Fingerprints, later: _Fingerprints, threshold: int, exact: set[str]) -> list[Duplicate]:
    if not earlier.names or not later.names:
        return []
    earlier_hashes = np.array(earlier.hashes, dtype=np.uint64)  # (N, 2): dHash of A, of B
    later_hashes = np.array(later.hashes, dtype=np.uint64)
    rows = max(1, _MATRIX_ELEMENTS // len(earlier_hashes))
    found = []
    for start in range(0, len(later_hashes), rows):
        block = later_hashes[start : start + rows, None, :] ^ earlier_hashes[None, :, :]  # (rows, N, 2)
        distances = _BITS_SET[block.view(np.uint8)].sum(axis=2, dtype=np.int64)  # (rows, N); works on numpy 1.x
        matches = distances.argmin(axis=1)
        best = distances[np.arange(len(distances)), matches]
        for offset in np.flatnonzero(best <= threshold):
            name = later.names[start + offset]
            if name not in exact:
                found.append(Duplicate("near", earlier.names[matches[offset]], name, int(best[offset])))
    return found


def _split_order(path: Path) -> tuple[int, str]:
    order = {"train": 0, "val": 1, "test": 2}
    return order.get(path.name, len(order)), path.name


def _describe_sizes(sizes: Counter[tuple[int, int]]) -> str:
    if not sizes:
        return "-"
    (width, height), _ = sizes.most_common(1)[0]
    others = len(sizes) - 1
    return f"{width}x{height}" + (f" (+{others} other{'s' * (others != 1)})" if others else "")


def _describe_duplicate(duplicate: Duplicate) -> str:
    if duplicate.kind == "exact":
        return f"{duplicate.second} is an exact copy of {duplicate.first}"
    return f"{duplicate.second} nearly repeats {duplicate.first} ({duplicate.distance} of {HASH_BITS} hash bits differ)"


def _format_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
