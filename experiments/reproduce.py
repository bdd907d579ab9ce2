"""Reproduce every number and grid of docs/results.md (the tables in docs/results-tables.md, the grids).

    python experiments/reproduce.py                      # every experiment, CPU recipes (2.5 h: 2-core EPYC, AVX-512)
    python experiments/reproduce.py --only facades       # one dataset
    python experiments/reproduce.py --data-root DIR      # where facades/ maps/ edges2shoes_swapped/ live

For each dataset: carve the fixed validation split (`pix2pix data holdout`, 10%, seed 0) into
datasets/NAME, train each recipe of configs/ (resuming a stopped run, skipping a finished one), evaluate
the final checkpoint on the validation split with `pix2pix eval`, then write docs/results-tables.md (the
tables, the hardware and the wall times) and docs/results/NAME.jpg (input | each model | target for the
same validation images). Every step is the CLI a user would type, so the script is also the recipe.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
GRID_IMAGES = 4  # validation images per grid
GRID_CELL = 128  # pixels per grid cell
# a stronger segmenter than eval's default (64 px, 1500 steps): it tells models apart more clearly
FCN_SETTINGS = ("--fcn-size", "128", "--fcn-iterations", "4000")
PAIRED = (("fcn_acc", "FCN per-pixel acc", 3), ("ssim", "SSIM", 3), ("l1_255", "L1 [0,255]", 2))


@dataclass(frozen=True)
class Experiment:
    name: str
    dataset: str  # folder under --data-root, carved into datasets/<dataset>
    recipes: tuple[tuple[str, str], ...]  # (configs/NAME.toml, label in the table)
    fcn_score: bool  # the photos' other side is a colour-coded label map


EXPERIMENTS = (
    Experiment(
        "facades",
        "facades",
        (
            ("facades_cpu_l1", "L1 only"),
            ("facades_cpu", "L1 + cGAN (paper)"),
            ("facades_cpu_resizeconv", "L1 + cGAN, resize-conv"),
        ),
        fcn_score=True,
    ),
    Experiment(  # the same two objectives trained twice as long: does the gap change?
        "facades_long",
        "facades",
        (("facades_cpu_l1_long", "L1 only, 2x longer"), ("facades_cpu_long", "L1 + cGAN (paper), 2x longer")),
        fcn_score=True,
    ),
    Experiment("maps", "maps", (("maps_cpu", "L1 + cGAN (paper)"),), fcn_score=False),
    Experiment("edges2shoes", "edges2shoes_swapped", (("edges2shoes_cpu", "L1 + cGAN (paper)"),), fcn_score=False),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--only", nargs="+", choices=[e.name for e in EXPERIMENTS], help="datasets to run")
    parser.add_argument("--no-train", action="store_true", help="only evaluate and write the results")
    args = parser.parse_args()
    os.chdir(REPO)  # the recipes name datasets/ and runs/ relative to the repository
    chosen = [e for e in EXPERIMENTS if not args.only or e.name in args.only]
    sections = []
    for experiment in chosen:
        prepare_dataset(args.data_root / experiment.dataset, Path("datasets") / experiment.dataset)
        runs = [train(recipe, skip=args.no_train) for recipe, _ in experiment.recipes]
        evaluate(runs, fcn_score=experiment.fcn_score)
        write_grid(runs, Path("docs/results") / f"{experiment.name}.jpg")
        sections.append(format_section(experiment, runs))
    results = Path("docs/results-tables.md")  # linked from docs/results.md: the tables live only here
    results.write_text(format_header() + "\n".join(sections))
    print(f"wrote {results} and docs/results/*.jpg")


def pix2pix(*arguments: str) -> None:
    command = [sys.executable, "-m", "pix2pix", *arguments]
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)


def prepare_dataset(source: Path, target: Path) -> None:
    if target.exists():
        return
    if not (source / "train").is_dir():
        sys.exit(f"{source}/train not found: pass --data-root (the folder holding facades/, maps/, ...)")
    pix2pix("data", "holdout", str(source), "--out", str(target), "--fraction", "0.1", "--seed", "0")


def train(recipe: str, *, skip: bool) -> Path:
    """Train configs/RECIPE.toml to the end (resuming a stopped run); returns the run folder."""
    config_path = Path("configs") / f"{recipe}.toml"
    config = tomllib.loads(config_path.read_text())
    run = Path(config["train"]["out"])
    total_epochs = config["optim"]["n_epochs"] + config["optim"]["n_epochs_decay"]
    if not skip and finished_epochs(run) < total_epochs:
        resume = ["--resume", "auto"] if (run / "checkpoints" / "latest.pt").exists() else []
        pix2pix("train", "--config", str(config_path), "--quiet", *resume)
    return run


def finished_epochs(run: Path) -> int:
    log = run / "log.csv"
    if not log.exists():
        return 0
    with log.open() as f:
        return max((int(row["epoch"]) for row in csv.DictReader(f)), default=0)


def training_minutes(run: Path) -> float:
    with (run / "log.csv").open() as f:
        return sum(float(row["seconds"]) for row in csv.DictReader(f)) / 60


def evaluate(runs: list[Path], *, fcn_score: bool) -> None:
    checkpoints = [str(run) for run in runs]
    fcn = ["--fcn-score", "on", *FCN_SETTINGS] if fcn_score else ["--fcn-score", "off"]
    pix2pix("eval", "--checkpoint", *checkpoints, "--split", "val", *fcn, "--quiet")


def write_grid(runs: list[Path], path: Path) -> None:
    """input | each run's output | target, for the first validation images (same for every run)."""
    images = [run / "eval-val" / "images" for run in runs]
    names = [row["name"] for row in read_metrics(runs[0])["images"][:GRID_IMAGES]]
    columns = 2 + len(runs)
    grid = Image.new("RGB", (columns * GRID_CELL, len(names) * GRID_CELL), "white")
    for row, name in enumerate(names):
        cells = [images[0] / "inputs" / f"{name}.png", *(folder / f"{name}.png" for folder in images)]
        cells.append(images[0] / "targets" / f"{name}.png")
        for column, cell in enumerate(cells):
            with Image.open(cell) as image:
                thumbnail = image.convert("RGB").resize((GRID_CELL, GRID_CELL), Image.Resampling.LANCZOS)
            grid.paste(thumbnail, (column * GRID_CELL, row * GRID_CELL))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path, quality=90)


def read_metrics(run: Path) -> dict:
    return json.loads((run / "eval-val" / "metrics.json").read_text())


def format_section(experiment: Experiment, runs: list[Path]) -> str:
    headers = ["model", "recipe", "L1 [0,255] ↓", "PSNR (dB) ↑", "SSIM ↑"]
    if experiment.fcn_score:
        headers += ["FCN per-pixel acc ↑", "FCN per-class acc ↑", "FCN class IoU ↑"]
    headers.append("train time (min)")
    lines = [f"### {experiment.name}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    real = None
    for (recipe, label), run in zip(experiment.recipes, runs, strict=True):
        metrics = read_metrics(run)
        summary = metrics["summary"]
        cells = [label, f"`configs/{recipe}.toml`"]
        cells += [format_stats(summary[name], digits) for name, digits in (("l1_255", 2), ("psnr", 2), ("ssim", 3))]
        if experiment.fcn_score:
            fcn = metrics["fcn_score"]
            cells.append(format_stats(summary["fcn_acc"], 3))  # the per-image mean: it has an interval
            cells += [f"{fcn['generated'][key]:.3f}" for key in ("class_acc", "class_iou")]
            real = fcn.get("real")
        cells.append(f"{training_minutes(run):.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    if real:
        upper_bound = [f"{real[key]:.3f}" for key in ("pixel_acc", "class_acc", "class_iou")]
        cells = ["real photos (upper bound)", "", "", "", "", *upper_bound, ""]
        lines.append("| " + " | ".join(cells) + " |")
    count = read_metrics(runs[0])["n_images"]
    kinds = sorted({ssim_kind(read_metrics(run)) for run in runs})
    ssim = " and ".join(kinds) + (" (mixed: rerun the older evaluations)" if len(kinds) > 1 else "")
    lines += ["", f"{count} validation images; ± is the half-width of the 95% confidence interval of the mean."]
    lines[-1] += f" SSIM: {ssim}."
    lines += format_paired_differences(experiment, runs)
    return "\n".join(lines) + "\n\n"


def format_paired_differences(experiment: Experiment, runs: list[Path]) -> list[str]:
    """Each model minus the first on the same images: a paired interval is much tighter than comparing
    two means, so it says whether a difference is more than the noise of a small validation set."""
    from pix2pix.metrics import compute_mean_ci

    if len(runs) < 2:
        return []
    per_image = [{row["name"]: row for row in read_metrics(run)["images"]} for run in runs]
    baseline_label = experiment.recipes[0][1]
    lines = ["", f"Paired differences against {baseline_label} (same images; mean and 95% interval):", ""]
    for (_, label), images in zip(experiment.recipes[1:], per_image[1:], strict=True):
        parts = []
        for key, name, digits in PAIRED:
            if experiment.fcn_score or key != "fcn_acc":
                stats = compute_mean_ci([images[n][key] - per_image[0][n][key] for n in images])
                low, high = stats["ci_low"], stats["ci_high"]
                parts.append(f"{name} {stats['mean']:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]")
        lines.append(f"- {label}: " + "; ".join(parts))
    return lines


def ssim_kind(metrics: dict) -> str:
    """The SSIM an evaluation used: metrics.json names it; those from before it did used scikit-image's default."""
    return metrics.get("settings", {}).get("SSIM", "scikit-image's 7x7 uniform window")


def format_stats(stats: dict[str, float], digits: int) -> str:
    return f"{stats['mean']:.{digits}f} ± {(stats['ci_high'] - stats['ci_low']) / 2:.{digits}f}"


def format_header() -> str:
    import torch

    return (
        "# Results on real data (written by experiments/reproduce.py)\n\n"
        f"Date {datetime.date.today()}, {cpu_name()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}, seed 0 for the split, the training and the evaluation.\n\n"
    )


def cpu_name() -> str:
    """The CPU's model name where Linux says it (e.g. "AMD EPYC 9B14"), else the architecture."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
