"""`pix2pix data download|combine|pairs|holdout|unpair|check`: argparse wiring; the work is in sibling modules."""

from __future__ import annotations

import argparse
from pathlib import Path

from pix2pix.data.images import DataError
from pix2pix.data.tools.check import HASH_BITS, NEAR_THRESHOLD, check_dataset, format_check_report
from pix2pix.data.tools.combine import combine_folders, format_combine_report
from pix2pix.data.tools.download import DATASETS, URL_VARIABLE, check_sha256, download_dataset
from pix2pix.data.tools.holdout import carve_holdout
from pix2pix.data.tools.pairs import KINDS, build_pairs
from pix2pix.data.tools.unpair import unpair

_MAX_LISTED = 10


def add_data_command(commands: argparse._SubParsersAction) -> None:
    """Register `pix2pix data ...` on the CLI's subparsers."""
    data = commands.add_parser("data", help="download, build and check paired datasets")
    tools = data.add_subparsers(dest="tool", required=True)

    download = tools.add_parser("download", help="download a standard pix2pix dataset")
    download.add_argument("name", choices=DATASETS)
    download.add_argument("--root", default="datasets", help="folder that receives NAME/ (default: datasets)")
    download.add_argument("--url", help=f"base URL of the archives (default: ${URL_VARIABLE} or the pix2pix site)")
    download.add_argument(
        "--sha256",
        type=parse_sha256,
        help="the archive's expected SHA-256: another is deleted and refused (`--verbose` prints what came)",
    )
    download.add_argument("--quiet", action="store_true", help="no progress bar")
    download.set_defaults(run=run_download)

    combine = tools.add_parser("combine", help="join folders of A and B images into side-by-side pairs")
    combine.add_argument("--a", required=True, help="folder of A images (or of split subfolders)")
    combine.add_argument("--b", required=True, help="folder of B images, matched to A by file name")
    combine.add_argument("--out", required=True, help="dataset root to write")
    combine.add_argument("--split", default="train", help="split name when --a holds images directly (default: train)")
    combine.add_argument("--quiet", action="store_true")
    combine.set_defaults(run=run_combine)

    pairs = tools.add_parser("pairs", help="build A|photo pairs from a folder of photos")
    pairs.add_argument("--photos", required=True, help="folder of photos (B)")
    pairs.add_argument("--kind", required=True, choices=KINDS, help="what A is")
    pairs.add_argument("--out", required=True, help="dataset root to write (must be new or empty)")
    pairs.add_argument(
        "--split", default="0.8,0.1,0.1", type=parse_ratios, help="train,val,test proportions (default: 0.8,0.1,0.1)"
    )
    pairs.add_argument("--seed", type=int, default=0, help="seed of the split (default: 0)")
    pairs.add_argument(
        "--size", type=int, help="centre-crop photos to squares and resize them to SIZE px, up or down (default: keep)"
    )
    pairs.add_argument("--quiet", action="store_true")
    pairs.set_defaults(run=run_pairs)

    holdout = tools.add_parser("holdout", help="carve a fixed, seeded validation split out of ROOT/train")
    holdout.add_argument("root", help="dataset root holding train/ (and no val/)")
    holdout.add_argument("--out", required=True, help="new dataset root: train/ and val/ link to ROOT's files")
    holdout.add_argument("--fraction", type=float, default=0.1, help="share of train held out (default: 0.1)")
    holdout.add_argument("--seed", type=int, default=0, help="seed of the choice (default: 0)")
    holdout.add_argument("--copy", action="store_true", help="copy the files instead of symlinking them")
    holdout.set_defaults(run=run_holdout)

    unpaired = tools.add_parser("unpair", help="lay out a paired dataset for CycleGAN: SPLITA/ and SPLITB/ folders")
    unpaired.add_argument("root", help="paired dataset root (train/, and val/, test/ when there)")
    unpaired.add_argument("--out", required=True, help="new dataset root: trainA/, trainB/, ... (must be new or empty)")
    unpaired.add_argument(
        "--direction",
        choices=("AtoB", "BtoA"),
        default="AtoB",
        help="which half of each pair goes to A, the domain translated from (default: AtoB, the left half)",
    )
    unpaired.add_argument(
        "--disjoint",
        action="store_true",
        help="A from the first half of the training pairs, B from the second: no image meets its counterpart",
    )
    unpaired.add_argument("--quiet", action="store_true", help="no progress bars")
    unpaired.set_defaults(run=run_unpair)

    check = tools.add_parser("check", help="check a dataset; exit code 2 when it cannot be trained on")
    check.add_argument("root", help="dataset root (holding train/, val/, test/; or trainA/, trainB/, ... unpaired)")
    check.add_argument(
        "--threshold",
        type=int,
        default=NEAR_THRESHOLD,
        help=f"hash bits (0 to {HASH_BITS}) that may differ in a near duplicate (default: {NEAR_THRESHOLD})",
    )
    check.add_argument("--quiet", action="store_true")
    check.set_defaults(run=run_check)


def parse_sha256(text: str) -> str:
    try:
        return check_sha256(text)
    except ValueError as error:  # argparse shows only an ArgumentTypeError's own message
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_ratios(text: str) -> tuple[float, float, float]:
    try:
        ratios = tuple(float(part) for part in text.split(","))
    except ValueError:
        ratios = ()
    if len(ratios) != 3 or min(ratios) < 0 or sum(ratios) <= 0:
        raise argparse.ArgumentTypeError(f"expected three non-negative proportions like 0.8,0.1,0.1, got {text!r}")
    train, val, test = ratios
    return train, val, test


def run_download(args: argparse.Namespace) -> None:
    target = download_dataset(
        args.name, Path(args.root), base_url=args.url, sha256=args.sha256, progress=not args.quiet
    )
    print(f"{args.name}: {target}")


def run_combine(args: argparse.Namespace) -> None:
    report = combine_folders(args.a, args.b, args.out, split=args.split, progress=not args.quiet)
    print(format_combine_report(report, args.out))
    if not report.total:
        raise DataError(f"{args.a} and {args.b}: no pairs written (no matching names of readable, same-size images)")


def run_pairs(args: argparse.Namespace) -> None:
    counts, skipped = build_pairs(
        args.photos,
        args.out,
        kind=args.kind,
        ratios=args.split,
        seed=args.seed,
        size=args.size,
        progress=not args.quiet,
    )
    per_split = ", ".join(f"{split} {count}" for split, count in counts.items())
    print(f"wrote {sum(counts.values())} {args.kind} pairs to {args.out} ({per_split or 'none'})")
    if skipped:
        print(f"{len(skipped)} photos skipped:")
        for problem in skipped[:_MAX_LISTED]:
            print(f"  {problem}")
    if not counts:
        raise DataError(f"{args.photos}: no readable photos")


def run_holdout(args: argparse.Namespace) -> None:
    counts = carve_holdout(args.root, args.out, fraction=args.fraction, seed=args.seed, copy=args.copy)
    print(f"{args.out}: train {counts['train']}, val {counts['val']} pairs (seed {args.seed}; see holdout.json)")


def run_unpair(args: argparse.Namespace) -> None:
    counts = unpair(args.root, args.out, direction=args.direction, disjoint=args.disjoint, progress=not args.quiet)
    listing = ", ".join(f"{split}A {a}, {split}B {b}" for split, (a, b) in counts.items())
    print(f"{args.out}: {listing} images")


def run_check(args: argparse.Namespace) -> None:
    report = check_dataset(args.root, near_threshold=args.threshold, progress=not args.quiet)
    print(format_check_report(report))
    if not report.usable:
        raise DataError(f"{args.root}: dataset is unusable: {'; '.join(report.problems)}")
