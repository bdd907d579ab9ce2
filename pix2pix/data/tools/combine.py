"""Join a folder of A images and a folder of B images into side-by-side A|B pairs (combine_A_and_B).

Images are matched by file stem (`A/12.jpg` with `B/12.png`). Either both folders hold images directly
(written to OUT/SPLIT), or both hold split subfolders (`A/train`, `B/train`, ...) that are mirrored under
OUT. Pairs are written as PNG, one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from pix2pix.data.images import DataError, list_images, load_image

_MAX_LISTED = 10  # names printed per problem before "+N more"


@dataclass
class CombineReport:
    """What `combine_folders` did; names are "split/stem"."""

    written: dict[str, int] = field(default_factory=dict)  # pairs per split
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line each: unreadable files, A/B size mismatches

    @property
    def total(self) -> int:
        return sum(self.written.values())


def combine_folders(
    a_dir: Path | str, b_dir: Path | str, out: Path | str, *, split: str = "train", progress: bool = True
) -> CombineReport:
    """Write OUT/SPLIT/NAME.png = A | B for every name found in both folders; see the module docstring."""
    a_dir, b_dir, out = Path(a_dir), Path(b_dir), Path(out)
    for folder in (a_dir, b_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder not found")
    splits = _find_splits(a_dir, b_dir, split)
    for name in splits:
        if (out / name).is_dir() and any((out / name).iterdir()):
            raise DataError(f"{out / name}: folder is not empty; choose a new --out")
    report = CombineReport()
    for name, (a_split, b_split) in splits.items():
        a_files = list_images(a_split) if a_split.is_dir() else {}
        b_files = list_images(b_split) if b_split.is_dir() else {}
        report.only_a += [f"{name}/{stem}" for stem in sorted(a_files.keys() - b_files.keys())]
        report.only_b += [f"{name}/{stem}" for stem in sorted(b_files.keys() - a_files.keys())]
        common = sorted(a_files.keys() & b_files.keys())
        written = 0
        for stem in tqdm(common, desc=f"combine {name}", unit="pair", disable=not progress):
            problem = _write_pair(a_files[stem], b_files[stem], out / name / f"{stem}.png")
            if problem:
                report.skipped.append(problem)
            else:
                written += 1
        report.written[name] = written
    return report


def format_combine_report(report: CombineReport, out: Path | str) -> str:
    """A few lines: pairs written per split, then unmatched names and skipped pairs."""
    per_split = ", ".join(f"{name} {count}" for name, count in report.written.items())
    lines = [f"wrote {report.total} pairs to {out} ({per_split})"]
    for label, names in (("only in A", report.only_a), ("only in B", report.only_b)):
        if names:
            lines.append(f"{len(names)} names {label}: {summarize(names)}")
    if report.skipped:
        lines.append(f"{len(report.skipped)} pairs skipped:")
        lines += [f"  {problem}" for problem in report.skipped[:_MAX_LISTED]]
        if len(report.skipped) > _MAX_LISTED:
            lines.append(f"  +{len(report.skipped) - _MAX_LISTED} more")
    return "\n".join(lines)


def summarize(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", +{len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def _find_splits(a_dir: Path, b_dir: Path, split: str) -> dict[str, tuple[Path, Path]]:
    """{split name: (A folder, B folder)}: the folders themselves, or their split subfolders."""
    if list_images(a_dir) or list_images(b_dir):
        return {split: (a_dir, b_dir)}
    names = sorted(
        {p.name for folder in (a_dir, b_dir) for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}
    )
    if not names:
        raise DataError(f"{a_dir} and {b_dir} hold neither images nor split subfolders")
    return {name: (a_dir / name, b_dir / name) for name in names}


def _write_pair(a_path: Path, b_path: Path, destination: Path) -> str | None:
    """Write A | B to `destination`; returns why the pair was skipped, or None."""
    try:
        a, b = load_image(a_path, 3), load_image(b_path, 3)
    except DataError as err:
        return str(err)
    if a.size != b.size:
        return f"{a_path} is {a.size[0]}x{a.size[1]} but {b_path} is {b.size[0]}x{b.size[1]}"
    destination.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([np.asarray(a), np.asarray(b)], axis=1)).save(destination)
    return None
