"""The paper's ablations, the Maps tutorial's comparisons and the runs behind docs/results.md, one study
at a time, each with its page.

    python experiments/studies.py receptive_field            # one study (trains what is missing, writes its page)
    python experiments/studies.py objectives generator       # several, in that order
    python experiments/studies.py --list                     # the studies, their runs and what is done
    python experiments/studies.py objectives --no-train      # rewrite a page from the runs recorded so far

A study is a CPU recipe of configs/ plus one set of flags per row, trained with the CLI a user would type
(`pix2pix train --config configs/RECIPE.toml FLAGS --seed S`), resumed where a run stopped and skipped
where it finished; a run is shared by every study that has the same row (the paper's default is in all of
them). Each run is evaluated on the carved-out validation split (`pix2pix eval --split val`, FCN-score on
facades). What the page needs of a finished run (its config, log.csv, the evaluation's metrics.json and a
strip of its first validation images) is kept in experiments/records/, in git: a study grows run by run
over several sittings and machines, and a recorded run is never trained again (delete its record to
rerun it); a run that fails is named at the end and the others go on. The study's page
docs/studies/NAME.md gets the tables, the paired differences against the paper's default (and which rows
they separate from it), the paper's own figures for the same rows, and an image grid of the same
validation images for every row, all from the records.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import fcntl
import functools
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
PAGES = Path("docs/studies")
RUNS = Path("runs/studies")
RECORDS = Path("experiments/records")
# The FCN-score's segmenter, kept with the records: every facades record, whatever machine or day it was
# evaluated on, is scored by this one network (and a fresh machine does not spend half an hour retraining it)
SEGMENTER = RECORDS / "segmenters" / "facades.pt"
# a stronger segmenter than eval's default (64 px, 1500 steps): it tells models apart more clearly
FCN_SETTINGS = ("--fcn-size", "128", "--fcn-iterations", "4000")
GRID_IMAGES = 4  # validation images per grid
GRID_CELL = 128  # pixels per grid cell


@dataclass(frozen=True)
class Row:
    label: str
    flags: tuple[str, ...] = ()  # on top of the study's recipe; () is the paper's default
    paper: tuple[float, float, float] | None = None  # the paper's FCN-scores: per-pixel acc, per-class acc, IoU
    recipe: str = ""  # another recipe than the study's (CycleGAN beside pix2pix)
    eval_flags: tuple[str, ...] = ()  # for `pix2pix eval` (CycleGAN: the paired data, and which half is input)
    reverse: bool = False  # evaluate the run's B -> A generator (a CycleGAN's second), beside its A -> B one

    def recipe_of(self, study: Study) -> str:
        return self.recipe or study.recipe


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    recipe: str  # configs/RECIPE.toml: the dataset and the CPU budget
    rows: tuple[Row, ...]  # the paper's default first: the paired differences are against it
    seeds: tuple[int, ...]
    paper_table: str = ""  # where the paper's figures come from
    unpaired_direction: str = ""  # also trains on datasets/DATASET-unpaired, the halves as this direction reads them

    @functools.cached_property  # read once: every page and evaluation asks (via fcn_score)
    def dataset(self) -> str:
        """The folder under datasets/ (and --data-root) that the recipe trains on."""
        recipe = tomllib.loads((CONFIGS / f"{self.recipe}.toml").read_text())
        return Path(recipe["data"]["data"]).name

    @property
    def fcn_score(self) -> bool:
        return self.dataset == "facades"  # the photos' other side is a colour-coded label map


PAPER_DEFAULT = "L1 + cGAN (paper)"
CITYSCAPES = "Isola et al. 2017, Cityscapes labels -> photo, FCN-scores"
NO_GAN, L1_OFF, UNCONDITIONAL, ENCODER_DECODER = (
    ("--no-gan",),
    ("--l1-weight", "0"),
    ("--no-disc-conditional",),
    (
        "--generator",
        "encoder_decoder",
    ),
)

# Each opt-in upgrade alone (docs/training.md#beyond-the-paper), at the recipe's iterations
UPGRADE_ROWS = (
    Row("paper (L1 + cGAN)"),
    Row("EMA of G, 0.999", ("--ema-decay", "0.999")),
    Row("DiffAugment", ("--diff-augment", "color,translation,cutout")),
    Row("2-scale D", ("--disc-scales", "2")),
    Row("feature matching, 10", ("--feature-matching-weight", "10")),
    Row("hinge loss", ("--gan-mode", "hinge")),
    Row("spectral norm in D", ("--disc-spectral-norm", "--disc-norm", "none")),
    Row("R1 penalty, gamma 1", ("--r1-weight", "1")),
)

HALF_WIDTH = ("--base-channels", "16", "--disc-channels", "16")
CYCLEGAN_TABLE = "Zhu et al. 2017 (CycleGAN), Cityscapes labels -> photo, FCN-scores, Table 1"


def unpaired_against_paired(flags: tuple[str, ...] = ()) -> tuple[Row, Row]:
    """pix2pix on the pairs, then CycleGAN on their halves (never paired), evaluated on the same pairs."""
    return (
        Row("pix2pix, L1 + cGAN (paired)", flags, (0.71, 0.25, 0.18)),
        Row(
            "CycleGAN (unpaired)",
            flags,
            (0.52, 0.17, 0.11),
            recipe="facades_cyclegan_cpu",
            eval_flags=("--data", "datasets/facades", "--direction", "BtoA"),
        ),
    )


STUDIES = (
    Study(
        "objectives",
        "Objectives: L1, GAN, cGAN, L1 + GAN, L1 + cGAN",
        "facades_cpu",
        (
            Row(PAPER_DEFAULT, (), (0.66, 0.23, 0.17)),
            Row("L1", NO_GAN, (0.42, 0.15, 0.11)),
            Row("GAN", L1_OFF + UNCONDITIONAL, (0.22, 0.05, 0.01)),
            Row("cGAN", L1_OFF, (0.57, 0.22, 0.16)),
            Row("L1 + GAN", UNCONDITIONAL, (0.64, 0.20, 0.15)),
        ),
        seeds=(0, 1),
        paper_table=f"{CITYSCAPES}, Table 1",
    ),
    Study(
        "generator",
        "Generator: encoder-decoder vs U-Net",
        "facades_cpu",
        (
            Row("U-Net, L1 + cGAN (paper)", (), (0.55, 0.20, 0.14)),
            Row("U-Net, L1", NO_GAN, (0.48, 0.18, 0.13)),
            Row("encoder-decoder, L1 + cGAN", ENCODER_DECODER, (0.29, 0.09, 0.05)),
            Row("encoder-decoder, L1", ENCODER_DECODER + NO_GAN, (0.35, 0.12, 0.08)),
        ),
        seeds=(0, 1),
        paper_table=f"{CITYSCAPES}, Table 2 (its U-Net rows were trained separately from Table 1's)",
    ),
    Study(
        "generator_maps",
        "Generator on maps: encoder-decoder vs U-Net (satellite -> map)",
        "maps_cpu",
        (
            Row("U-Net, L1 + cGAN (paper)"),
            Row("U-Net, L1", NO_GAN),
            Row("encoder-decoder, L1 + cGAN", ENCODER_DECODER),
            Row("encoder-decoder, L1", ENCODER_DECODER + NO_GAN),
        ),
        seeds=(0, 1),
    ),
    Study(
        "receptive_field",
        "Discriminator receptive field: 1x1, 16x16, 70x70, 286x286",
        "facades_cpu",
        (
            Row("70x70 PatchGAN (paper)", (), (0.66, 0.23, 0.17)),
            Row("1x1 PixelGAN", ("--discriminator", "pixel"), (0.39, 0.15, 0.10)),
            Row("16x16 PatchGAN", ("--disc-layers", "1"), (0.65, 0.21, 0.17)),
            Row("286x286 ImageGAN", ("--disc-layers", "5"), (0.42, 0.16, 0.11)),
        ),
        seeds=(0,),
        paper_table=f"{CITYSCAPES}, Table 3 (at 256 px, where 286x286 covers the whole image)",
    ),
    Study(
        "batch_size",
        "Batch size: 1 vs 16, at equal epochs and at equal iterations",
        "facades_cpu",
        (
            Row("batch 1 (paper)"),
            Row("batch 16, equal epochs (1/16 of the iterations)", ("--batch-size", "16")),
            Row(
                "batch 16, equal iterations (16x the epochs)",
                ("--batch-size", "16", "--n-epochs", "176", "--n-epochs-decay", "176"),
            ),
        ),
        seeds=(0,),
    ),
    Study(
        "width",
        "Width: half, default and double ngf / ndf",
        "facades_cpu",
        (
            Row("ngf = ndf = 32 (the CPU recipe)"),
            Row("half: 16", HALF_WIDTH),
            Row("double: 64 (the paper's width)", ("--base-channels", "64", "--disc-channels", "64")),
        ),
        seeds=(0,),
    ),
    Study(  # not in the paper: the checkerboard artifacts of transposed convolutions, at CPU scale
        "upsampling",
        "Upsampling in the U-Net decoder: transposed convolution (paper) vs resize-convolution",
        "facades_cpu",
        (Row("transposed convolution (paper)"), Row("resize-convolution", recipe="facades_cpu_resizeconv")),
        seeds=(0,),
    ),
    Study(  # does the L1 vs L1 + cGAN gap change with training?
        "training_length",
        "Training length: L1 and L1 + cGAN, at the CPU recipe and twice as long",
        "facades_cpu",
        (
            Row(PAPER_DEFAULT),
            Row("L1", NO_GAN),
            Row("L1 + cGAN, 2x longer", recipe="facades_cpu_long"),
            Row("L1, 2x longer", recipe="facades_cpu_l1_long"),
        ),
        seeds=(0,),
    ),
    Study(
        "shoes",
        "Edges -> shoes: L1 vs L1 + cGAN",
        "edges2shoes_cpu",
        (Row(PAPER_DEFAULT), Row("L1", NO_GAN)),
        seeds=(0,),
    ),
    Study(  # a speed opt-in (1.2-1.5x a step on a CPU with native bf16): what does it cost in quality?
        "precision",
        "Mixed precision on the CPU: bf16 autocast against fp32",
        "facades_cpu",
        (Row("fp32 (paper)"), Row("bf16 autocast", ("--precision", "bf16"))),
        seeds=(0,),
    ),
    Study(
        "cyclegan",
        "Unpaired (CycleGAN) against paired (pix2pix) training, facades labels -> photo",
        "facades_cpu",
        unpaired_against_paired(),
        seeds=(0,),
        paper_table=CYCLEGAN_TABLE,
        unpaired_direction="BtoA",
    ),
    Study(  # the same CycleGAN run as the cyclegan study's: its second generator, G_B, learned the other way
        "cyclegan_photo2labels",
        "Unpaired (CycleGAN) against paired (pix2pix) training, facades photo -> labels",
        "facades_cpu",
        (
            Row("pix2pix, L1 + cGAN (paired)", ("--direction", "AtoB"), (0.85, 0.40, 0.32)),
            Row(
                "CycleGAN (unpaired), its B -> A generator",
                (),
                (0.58, 0.22, 0.16),
                recipe="facades_cyclegan_cpu",
                eval_flags=("--data", "datasets/facades", "--direction", "AtoB"),
                reverse=True,
            ),
        ),
        seeds=(0,),
        paper_table="Zhu et al. 2017 (CycleGAN), Cityscapes photo -> labels, label maps scored as they are, Table 2",
        unpaired_direction="BtoA",
    ),
    Study(  # a CycleGAN iteration costs about 7 pix2pix ones: at half width the comparison fits a CPU afternoon
        "cyclegan_half",
        "Unpaired (CycleGAN) against paired (pix2pix) training at half width (ngf = ndf = 16), facades labels -> photo",
        "facades_cpu",
        unpaired_against_paired(HALF_WIDTH),
        seeds=(0,),
        paper_table=CYCLEGAN_TABLE,
        unpaired_direction="BtoA",
    ),
    Study(
        "upgrades",
        "Upgrades beyond the paper, each alone, on facades",
        "facades_cpu",
        # and separate learning rates, D's twice G's (the two time-scale update rule's faster D)
        (*UPGRADE_ROWS, Row("TTUR: D's lr 4e-4", ("--disc-lr", "0.0004"))),
        seeds=(0, 1),
    ),
    Study(  # the upgrades above the paper's default in the upgrades study, together, at equal iterations
        "plus",
        "The combined upgrades (configs/facades_plus.toml) against the paper, on facades",
        "facades_cpu",
        (Row("paper (L1 + cGAN)"), Row("facades_plus", recipe="facades_plus")),
        seeds=(0, 1),
    ),
    Study("upgrades_maps", "Upgrades beyond the paper, each alone, on maps", "maps_cpu", UPGRADE_ROWS, seeds=(0, 1)),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", nargs="*", metavar="STUDY", help=", ".join(s.name for s in STUDIES))
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--no-train", action="store_true", help="only evaluate and write the pages")
    parser.add_argument("--list", action="store_true", help="list the studies and their runs, then stop")
    parser.add_argument(
        "--prepare-only", action="store_true", help="carve the studies' held-out splits into datasets/, then stop"
    )
    args = parser.parse_args()
    os.chdir(REPO)  # the recipes name datasets/ and runs/ relative to the repository
    unknown = set(args.studies) - {s.name for s in STUDIES}
    if unknown:
        parser.error(f"unknown study {', '.join(sorted(unknown))}; expected {', '.join(s.name for s in STUDIES)}")
    chosen = [next(s for s in STUDIES if s.name == name) for name in args.studies]  # in the order given
    if args.prepare_only and (args.no_train or not chosen):
        parser.error("--prepare-only needs a study to prepare for, and no --no-train")
    if args.list or not chosen:
        print(describe_studies(chosen or list(STUDIES)))
        return
    for study in chosen if not args.no_train else []:  # pages from records alone need no data
        prepare_dataset(args.data_root / study.dataset, Path("datasets") / study.dataset)
        if study.unpaired_direction:
            prepare_unpaired(Path("datasets") / study.dataset, study.unpaired_direction)
    if args.prepare_only:
        return
    # a study whose runs another studies.py process holds is put off: this process goes on with the next
    # study, and comes back once it has done everything it could
    pending, failures = chosen, []
    while pending:
        put_off = [study for study in pending if not work_through(study, failures, train_runs=not args.no_train)]
        if put_off:
            time.sleep(LOCK_POLL_SECONDS)
        pending = put_off
    write_index()
    if failures:
        sys.exit("these runs failed (rerun to retry them; each resumes where it stopped):\n" + "\n".join(failures))


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


def work_through(study: Study, failures: list[str], *, train_runs: bool) -> bool:
    """Train and evaluate each run of `study` that no other process holds; write its page once none is
    held elsewhere (with `train_runs` off, at once: a page of the runs finished so far). A run whose
    training or evaluation fails is added to `failures` and left. Returns whether the study is done, as
    far as this process can take it."""
    held_elsewhere = False
    for seed, row in itertools.product(study.seeds, study.rows):
        run, record = run_folder(study, row, seed), record_folder(study, row, seed)
        if is_recorded(record):
            continue
        with locked(run.with_name(run.name + ".lock")) as held:
            if not held:  # another process is on it; its flock goes when that process ends, however
                held_elsewhere = True
                continue
            if is_recorded(record):  # by the process that held the lock a moment ago
                continue
            try:
                if train_runs:
                    train(study, row, seed, run)
                if is_finished(run):
                    if not is_evaluated(run, row):
                        evaluate(run, row, fcn_score=study.fcn_score)
                    save_record(run, eval_folder(run, row), record)
            except subprocess.CalledProcessError as error:  # one failed run does not end an unattended study
                failures.append(f"{run}: `pix2pix {error.cmd[3]}` exited {error.returncode}")
                print(f"failed: {failures[-1]}; going on with the next run", file=sys.stderr, flush=True)
    done = not held_elsewhere or not train_runs
    if done:
        records = {(row, seed): record_folder(study, row, seed) for seed in study.seeds for row in study.rows}
        write_page(study, {key: record for key, record in records.items() if is_recorded(record)})
    return done


LOCK_POLL_SECONDS = 60


@contextlib.contextmanager
def locked(lock: Path) -> Iterator[bool]:
    """Whether this process got the exclusive flock of `lock` (created if need be), held until the end."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True  # closing the file releases the lock


def run_folder(study: Study, row: Row, seed: int) -> Path:
    """runs/studies/RECIPE/FLAGS-seedS: the same row of two studies is the same run."""
    name = "_".join(flag.lstrip("-") for flag in row.flags) or "default"
    return RUNS / row.recipe_of(study) / f"{name}-seed{seed}"


def record_folder(study: Study, row: Row, seed: int) -> Path:
    """experiments/records/RECIPE/FLAGS-seedS, beside the run's name (FLAGS-seedS-reverse for its B -> A
    generator)."""
    run = run_folder(study, row, seed).relative_to(RUNS)
    return RECORDS / (run.with_name(f"{run.name}-reverse") if row.reverse else run)


def eval_folder(run: Path, row: Row) -> Path:
    """Where `pix2pix eval` writes the row's evaluation of `run`: RUN/eval-val, or RUN/eval-val-reverse."""
    return run / ("eval-val-reverse" if row.reverse else "eval-val")


RECORD_FILES = ("config.json", "log.csv", "metrics.json", "grid.jpg")


def save_record(run: Path, evaluation: Path, record: Path) -> None:
    """Keep what the pages read of a finished run and its `evaluation`: a few tens of kB, where the run is
    100s of MB."""
    record.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "log.csv"):
        shutil.copyfile(run / name, record / name)
    write_grid([evaluation], record / "grid.jpg")  # input | output | target, the first validation images
    (record / "measured.json").write_text(json.dumps(describe_machine(), indent=2) + "\n")
    shutil.copyfile(evaluation / "metrics.json", record / "metrics.json")  # last: it marks the record whole
    print(f"recorded {record}")


def write_grid(evaluations: list[Path], path: Path) -> None:
    """input | each evaluation's output | target, for the first validation images (same for every run)."""
    images = [evaluation / "images" for evaluation in evaluations]
    names = [row["name"] for row in read_metrics(evaluations[0])["images"][:GRID_IMAGES]]
    columns = 2 + len(evaluations)
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


def cpu_name() -> str:
    """The CPU's model name where Linux says it (e.g. "AMD EPYC 9B14"), else the architecture."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def describe_machine() -> dict[str, str]:
    """Where and when a record was measured: its page may gather records of several machines and days."""
    import torch

    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return {
        "date": datetime.date.today().isoformat(),  # the day it was evaluated and recorded
        "machine": f"{cpu_name()}, {os.cpu_count()} CPU cores{gpu}",
        "torch": torch.__version__,
    }


def is_recorded(record: Path) -> bool:
    return all((record / name).exists() for name in RECORD_FILES)


def read_metrics(record: Path) -> dict:
    return json.loads((record / "metrics.json").read_text())


def train(study: Study, row: Row, seed: int, run: Path) -> None:
    if is_finished(run):
        return
    resume = ["--resume", "auto"] if (run / "checkpoints" / "latest.pt").exists() else []
    if run.exists() and not resume:
        shutil.rmtree(run)  # stopped before its first checkpoint: nothing to keep, and train refuses the folder
    config = ["--config", f"configs/{row.recipe_of(study)}.toml", "--out", str(run), "--seed", str(seed)]
    pix2pix("train", *config, *row.flags, "--quiet", *resume)


def is_finished(run: Path) -> bool:
    config = run / "config.json"
    if not config.exists():
        return False
    optim = json.loads(config.read_text())["optim"]
    return finished_epochs(run) >= optim["n_epochs"] + optim["n_epochs_decay"]


def finished_epochs(run: Path) -> int:
    log = run / "log.csv"
    if not log.exists():
        return 0
    with log.open() as f:
        return max((int(row["epoch"]) for row in csv.DictReader(f)), default=0)


def evaluate(run: Path, row: Row, *, fcn_score: bool) -> None:
    """`pix2pix eval` of the run's final checkpoint on the validation split, into `eval_folder`; on facades
    with the kept segmenter, or, the first time, with one trained as FCN_SETTINGS say, which is then kept."""
    fcn = ["--fcn-score", "on", *FCN_SETTINGS] if fcn_score else ["--fcn-score", "off"]
    if fcn_score and SEGMENTER.exists():
        fcn += ["--fcn-segmenter", str(SEGMENTER)]
    folder = eval_folder(run, row)
    reverse = ["--reverse", "--output", str(folder)] if row.reverse else []
    pix2pix("eval", "--checkpoint", str(run), "--split", "val", *row.eval_flags, *reverse, *fcn, "--quiet")
    if not fcn_score or SEGMENTER.exists():
        return
    scored = json.loads((folder / "metrics.json").read_text()).get("fcn_score") or {}
    if "segmenter" in scored:  # photos scored by a trained segmenter (not label maps compared as they are)
        SEGMENTER.parent.mkdir(parents=True, exist_ok=True)
        partial = SEGMENTER.with_name(f".{SEGMENTER.name}.{os.getpid()}")  # another runner may read it at once
        shutil.copyfile(scored["segmenter"]["path"], partial)
        os.replace(partial, SEGMENTER)


def prepare_unpaired(paired: Path, direction: str) -> None:
    """datasets/NAME-unpaired from the held-out datasets/NAME: the same training pairs, cut into halves."""
    from pix2pix.data.tools.unpair import read_unpair_record

    unpaired = paired.with_name(f"{paired.name}-unpaired")
    if not unpaired.exists():
        pix2pix("data", "unpair", str(paired), "--out", str(unpaired), "--direction", direction, "--quiet")
    made = read_unpair_record(unpaired) or {}
    if made.get("direction") != direction or made.get("disjoint"):
        sys.exit(f"{unpaired} was not made by `pix2pix data unpair {paired} --direction {direction}`: delete it")


def is_evaluated(run: Path, row: Row) -> bool:
    """An evaluation newer than the run's last epoch, with today's SSIM (an older one is redone: it is cheap)."""
    from pix2pix.metrics import SSIM_SETTINGS  # loads torch: only when a run is there to check

    metrics = eval_folder(run, row) / "metrics.json"
    if not metrics.exists() or metrics.stat().st_mtime <= (run / "log.csv").stat().st_mtime:
        return False
    return ssim_kind(json.loads(metrics.read_text())) == SSIM_SETTINGS


def ssim_kind(metrics: dict) -> str:
    """The SSIM an evaluation used: metrics.json names it; those from before it did used scikit-image's default."""
    return metrics.get("settings", {}).get("SSIM", "scikit-image's 7x7 uniform window")


def write_page(study: Study, done: dict[tuple[Row, int], Path]) -> None:
    """docs/studies/NAME.md and its pictures, from the records of the study's finished runs."""
    PAGES.mkdir(parents=True, exist_ok=True)
    grid = PAGES / f"{study.name}.jpg"
    first_seed = [done[row, study.seeds[0]] for row in study.rows if (row, study.seeds[0]) in done]
    if first_seed:
        join_grids(first_seed, grid)
    curves = PAGES / f"{study.name}-curves.png"
    # a reverse row's log is its run's, whose validation translated A -> B: not the row's generator
    labelled = {
        row.label: done[row, study.seeds[0]] for row in study.rows if (row, study.seeds[0]) in done and not row.reverse
    }
    has_curves = plot_validation_curves(labelled, curves)
    page = PAGES / f"{study.name}.md"
    page.write_text(format_page(study, done, grid.name if first_seed else None, curves.name if has_curves else None))
    print(f"wrote {page}")


def join_grids(records: list[Path], path: Path) -> None:
    """input | each record's output | target: the records' own input | output | target strips, joined (the
    inputs and targets are the same validation images in every record of a study)."""
    strips = [Image.open(record / "grid.jpg").convert("RGB") for record in records]
    height = strips[0].height
    columns = [strips[0].crop((0, 0, GRID_CELL, height))]
    columns += [strip.crop((GRID_CELL, 0, 2 * GRID_CELL, height)) for strip in strips]
    columns.append(strips[0].crop((2 * GRID_CELL, 0, 3 * GRID_CELL, height)))
    grid = Image.new("RGB", (GRID_CELL * len(columns), height), "white")
    for index, column in enumerate(columns):
        grid.paste(column, (index * GRID_CELL, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path, quality=90)


CURVES = (("val_G", "generator loss on the validation pairs"), ("val_ssim", "validation SSIM"))


VALIDATION_SCALE = (
    "Validation during training scores the translations at the size the network translates at (a "
    "resize-and-crop recipe's crop size), the tables above at the validation images' own size (the output "
    "resized to it): where the two differ, so do the SSIMs, most for outputs whose fine detail does not line "
    "up with the target's."
)


def plot_validation_curves(runs: dict[str, Path], path: Path) -> bool:
    """The generator's validation loss beside the validation SSIM, epoch by epoch, one line per row: the
    Maps tutorial's point that the loss does not follow image quality, checked on each study. False when
    no run logged validation losses."""
    logs = {label: read_validation_log(run) for label, run in runs.items()}
    logs = {label: rows for label, rows in logs.items() if rows}
    if not logs:
        return False
    import matplotlib

    matplotlib.use("Agg")  # files only
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, len(CURVES), figsize=(6 * len(CURVES), 3.5), constrained_layout=True)
    for axis, (column, title) in zip(axes, CURVES):
        for label, rows in logs.items():
            points = [(row["epoch"], row[column]) for row in rows if column in row]
            if points:
                axis.plot(*zip(*points), marker="o", label=label)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        if axis.lines:  # a panel of a column no run logged stays empty
            axis.legend(fontsize=8)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return True


def read_validation_log(record: Path) -> list[dict[str, float]]:
    """The validation epochs of log.csv, each with the CURVES columns it logged: a pix2pix run's rows with
    validation losses (runs trained before they were logged have none), a CycleGAN run's with its cycle
    terms (it logs G_A's val_ssim but no val_G)."""
    with (record / "log.csv").open() as f:
        rows = [row for row in csv.DictReader(f) if row.get("val_G") or row.get("val_cycle_A")]
    return [
        {"epoch": int(row["epoch"]), **{name: float(row[name]) for name, _ in CURVES if row.get(name)}} for row in rows
    ]


def format_page(study: Study, done: dict[tuple[Row, int], Path], grid: str | None, curves: str | None = None) -> str:
    command = f"python experiments/studies.py {study.name}"
    lines = [
        f"# {study.title}",
        "",
        f"Reproduce with `{command}` (recipe `configs/{study.recipe}.toml`, seeds {', '.join(map(str, study.seeds))}; "
        "each row adds its flags to the recipe, or names its own). Written by that script; do not edit by hand.",
        "",
        "Seed 0 for the split and the evaluation, the row's seed for the training. " + format_measured(study, done),
        "",
    ]
    missing = [f"{row.label} (seed {seed})" for seed in study.seeds for row in study.rows if (row, seed) not in done]
    if missing:
        finished_only = " The tables below hold the finished runs only." if done else ""
        lines += [f"**Not yet run:** {'; '.join(missing)}.{finished_only}", ""]
    lines += format_table(study, done)
    lines += format_differences(study, done)
    lines += format_paper_comparison(study, done)
    if grid:
        columns = " | ".join(row.label for row in study.rows if (row, study.seeds[0]) in done)
        lines += ["", "## Pictures", "", f"input | {columns} | target (seed {study.seeds[0]}):", ""]
        lines.append(f"![{study.title}]({grid})")
    if curves:
        lines += ["", "## Validation curves", "", f"Seed {study.seeds[0]}, every validation epoch of each row:", ""]
        lines.append(f"![validation loss and SSIM]({curves})")
        lines += ["", VALIDATION_SCALE]
    return "\n".join(lines) + "\n"


def format_measured(study: Study, done: dict[tuple[Row, int], Path]) -> str:
    """Which records were measured when and where, grouped ("Measured 2026-12-01 on CPU, torch T (every
    recorded row)." when all agree)."""
    groups: dict[str, list[str]] = {}
    for (row, seed), record in sorted(done.items(), key=lambda item: (item[0][1], study.rows.index(item[0][0]))):
        machine = read_measured(record)
        where = f"{machine['date']} on {machine['machine']}, torch {machine['torch']}" if machine else "(not noted)"
        groups.setdefault(where, []).append(f"{row.label} seed {seed}")
    if not groups:
        return "Nothing measured yet."
    if len(groups) == 1:
        return f"Measured {next(iter(groups))} (every recorded row)."
    return "Measured " + "; ".join(f"{where}: {', '.join(rows)}" for where, rows in groups.items()) + "."


def read_measured(record: Path) -> dict[str, str] | None:
    """The record's `describe_machine` (None for records kept before it was noted)."""
    path = record / "measured.json"
    return json.loads(path.read_text()) if path.exists() else None


def other_machine(record: Path, default_record: Path) -> str | None:
    """Where `record` was trained, if not where the default it is paired with was: the two runs then
    differ in their floating-point arithmetic too, not only in the row's flags."""
    ours, theirs = read_measured(record), read_measured(default_record)
    if ours is None or theirs is None or cpu_model(ours) == cpu_model(theirs):
        return None
    return f"trained on {cpu_model(ours)}, the default on {cpu_model(theirs)}"


def cpu_model(measured: dict[str, str]) -> str:
    """The machine without its clock: one CPU model is named with it on some hosts and without on others."""
    return re.sub(r" @ [0-9.]+ ?GHz", "", measured["machine"])


def format_table(study: Study, done: dict[tuple[Row, int], Path]) -> list[str]:
    headers = ["row", "seed", "flags", "L1 [0,255] ↓", "PSNR (dB) ↑", "SSIM ↑"]
    if study.fcn_score:
        headers += ["FCN per-pixel acc ↑", "FCN per-class acc ↑", "FCN class IoU ↑"]
    headers += ["train time (min)", "ms / iteration"]
    if not done:
        return ["## Results", "", "No run recorded yet."]
    lines = ["## Results", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for (row, seed), record in sorted(done.items(), key=lambda item: (study.rows.index(item[0][0]), item[0][1])):
        summary = read_metrics(record)["summary"]
        recipe = f"`configs/{row.recipe}.toml`" if row.recipe else ""
        cells = [row.label, str(seed), " ".join([recipe, *(f"`{flag}`" for flag in row.flags)]).strip() or "(recipe)"]
        cells += [format_stats(summary[name], digits) for name, digits in (("l1_255", 2), ("psnr", 2), ("ssim", 3))]
        if study.fcn_score:
            scores = read_metrics(record)["fcn_score"]["generated"]
            cells += [format_stats(summary["fcn_acc"], 3), *(f"{scores[k]:.3f}" for k in ("class_acc", "class_iou"))]
        minutes = training_minutes(record)
        cells += [f"{minutes:.1f}", f"{1000 * 60 * minutes / iterations(record):.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    metrics = read_metrics(next(iter(done.values())))
    lines += [
        "",
        f"{metrics['n_images']} validation images; ± is the half-width of the 95% confidence interval of the"
        f" mean. SSIM: {ssim_settings(done)}. Train times are the epochs' wall times in the run's log.csv,"
        " with other work on the machine and one or two threads a run: indicative, not a measured cost"
        " (benchmarks/ measures costs).",
    ]
    if study.fcn_score and (real := metrics["fcn_score"].get("real")):
        upper = ", ".join(f"{name} {real[key]:.3f}" for key, name in FCN_NAMES)
        lines.append(f"The segmenter on the real photos (the FCN-score's upper bound): {upper}.")
    return lines


def format_stats(stats: dict[str, float], digits: int) -> str:
    return f"{stats['mean']:.{digits}f} ± {(stats['ci_high'] - stats['ci_low']) / 2:.{digits}f}"


def training_minutes(record: Path) -> float:
    with (record / "log.csv").open() as f:
        return sum(float(row["seconds"]) for row in csv.DictReader(f)) / 60


def ssim_settings(done: dict[tuple[Row, int], Path]) -> str:
    """The SSIM of the page's records, and a warning should they mix two kinds."""
    kinds = sorted({ssim_kind(read_metrics(record)) for record in done.values()})
    return " and ".join(kinds) + (" (mixed: rerun the older records)" if len(kinds) > 1 else "")


FCN_NAMES = (("pixel_acc", "per-pixel acc"), ("class_acc", "per-class acc"), ("class_iou", "class IoU"))
PAIRED = (("fcn_acc", "FCN per-pixel acc", 3), ("ssim", "SSIM", 3), ("l1_255", "L1 [0,255]", 2))


def format_differences(study: Study, done: dict[tuple[Row, int], Path]) -> list[str]:
    """Each row minus the paper's default of the same seed, on the same images: a paired interval is much
    tighter than comparing two means, so it says whether a difference is more than the noise."""
    default = study.rows[0]
    lines = []
    for row, seed in itertools.product(study.rows[1:], study.seeds):
        if (row, seed) not in done or (default, seed) not in done:
            continue
        parts = []
        for key, name, digits in PAIRED:
            if key == "ssim" and not same_ssim(done[row, seed], done[default, seed]):
                parts.append("SSIM not compared (the two were measured with different SSIMs)")
            elif study.fcn_score or key != "fcn_acc":
                stats = paired_difference(done[row, seed], done[default, seed], key)
                low, high = stats["ci_low"], stats["ci_high"]
                parts.append(f"{name} {stats['mean']:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]")
        elsewhere = other_machine(done[row, seed], done[default, seed])
        lines.append(f"- {row.label}, seed {seed}: " + "; ".join(parts) + (f" ({elsewhere})" if elsewhere else ""))
    if not lines:
        return []
    header = [
        "",
        f"## Paired differences against {default.label}",
        "",
        "Same seed, same images; mean and 95% interval:",
    ]
    return [*header, "", *lines, *format_findings(study, done)]


def same_ssim(record: Path, other: Path) -> bool:
    """Whether two records' SSIMs were measured alike (records from before the Gaussian window are not)."""
    return ssim_kind(read_metrics(record)) == ssim_kind(read_metrics(other))


def paired_difference(record: Path, baseline_record: Path, key: str) -> dict[str, float]:
    """Mean and 95% interval of `key`, image by image, of one record minus another."""
    from pix2pix.metrics import compute_mean_ci

    ours, baseline = per_image(record), per_image(baseline_record)
    return compute_mean_ci([float(ours[name][key]) - float(baseline[name][key]) for name in ours])


def format_findings(study: Study, done: dict[tuple[Row, int], Path]) -> list[str]:
    """Each row sorted by whether its paired interval of the study's headline metric (the FCN-score's
    per-pixel accuracy, else SSIM) lies above zero in every seed, below zero in every seed, or neither."""
    default = study.rows[0]
    key, name = ("fcn_acc", "FCN per-pixel accuracy") if study.fcn_score else ("ssim", "SSIM")
    verdicts: dict[str, list[str]] = {"above": [], "below": [], "neither": []}
    for row in study.rows[1:]:
        seeds = [
            seed
            for seed in study.seeds
            if (row, seed) in done
            and (default, seed) in done
            and (key != "ssim" or same_ssim(done[row, seed], done[default, seed]))
        ]
        if not seeds:
            continue
        intervals = [paired_difference(done[row, seed], done[default, seed], key) for seed in seeds]
        verdict = (
            "above"
            if all(stats["ci_low"] > 0 for stats in intervals)
            else "below"
            if all(stats["ci_high"] < 0 for stats in intervals)
            else "neither"
        )
        verdicts[verdict].append(f"{row.label} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})")
    if not any(verdicts.values()):
        return []
    lines = ["", f"Read by {name}, against {default.label} (generated from the intervals above):", ""]
    wording = {
        "above": "above it in every seed",
        "below": "below it in every seed",
        "neither": "not separated from it (in some seed the interval holds zero, or the seeds disagree)",
    }
    for verdict, rows in verdicts.items():
        if rows:
            lines.append(f"- {wording[verdict]}: {', '.join(rows)}")
    return lines


def iterations(record: Path) -> int:
    with (record / "log.csv").open() as f:
        return max(int(row["iteration"]) for row in csv.DictReader(f))


def per_image(record: Path) -> dict[str, dict[str, float]]:
    return {row["name"]: row for row in read_metrics(record)["images"]}


def format_paper_comparison(study: Study, done: dict[tuple[Row, int], Path]) -> list[str]:
    """The paper's figures for the same rows, and whether the two orderings by class IoU agree, pair by pair."""
    if not study.paper_table:
        return ["", "The paper reports no figures for this comparison."]
    lines = ["", f"## The paper's figures ({study.paper_table})", ""]
    lines += [
        "| row | per-pixel acc | per-class acc | class IoU | ours: class IoU (mean of seeds) |",
        "|---|---|---|---|---|",
    ]
    ours = {}
    for row in study.rows:
        scores = [
            read_metrics(done[row, seed])["fcn_score"]["generated"]["class_iou"]
            for seed in study.seeds
            if (row, seed) in done
        ]
        if scores:
            ours[row] = sum(scores) / len(scores)
        assert row.paper is not None
        mine = f"{ours[row]:.3f}" if row in ours else "not run"
        lines.append(f"| {row.label} | " + " | ".join(f"{value:.2f}" for value in row.paper) + f" | {mine} |")
    pairs = list(itertools.combinations([row for row in study.rows if row in ours], 2))
    ties = [f"{a.label} and {b.label}" for a, b in pairs if iou(a) == iou(b)]
    ranked = [(a, b) for a, b in pairs if iou(a) != iou(b)]
    if ranked:
        disagree = [f"{a.label} vs {b.label}" for a, b in ranked if (ours[a] - ours[b]) * (iou(a) - iou(b)) <= 0]
        agree = len(ranked) - len(disagree)
        lines += ["", f"Ordering by class IoU: {agree} of {len(ranked)} pairs of rows agree with the paper"]
        lines[-1] += f"; they disagree on {', '.join(disagree)}." if disagree else "."
        if ties:
            lines[-1] += f" The paper ties {'; '.join(ties)}."
    return lines


def iou(row: Row) -> float:
    assert row.paper is not None
    return row.paper[2]


def describe_studies(studies: list[Study]) -> str:
    lines = []
    for study in studies:
        lines.append(f"{study.name}: {study.title} (configs/{study.recipe}.toml)")
        for seed, row in itertools.product(study.seeds, study.rows):
            run, record = run_folder(study, row, seed), record_folder(study, row, seed)
            if is_recorded(record):
                state = f"recorded in {record}"
            else:
                state = (
                    "finished" if is_finished(run) else f"{finished_epochs(run)} epochs" if run.exists() else "to run"
                )
            lines.append(f"  {row.label}, seed {seed}: {run} ({state})")
    return "\n".join(lines)


def write_index() -> None:
    """docs/studies/index.md: the protocol, and every study with a link where its page exists."""
    lines = [
        "# Studies: the paper's ablations at CPU scale",
        "",
        "Each study trains one CPU recipe of `configs/` once per row, the row's flags added (128 px crops,",
        "ngf = ndf = 32, about 8,000 iterations), on the training pairs left after `pix2pix data holdout`",
        "carves 10% out (seed 0), and evaluates every run on those held-out pairs with `pix2pix eval --split val`",
        "(the paper's test-time protocol: dropout on, batch statistics; on facades also the FCN-score with a",
        f"segmenter trained on the training photos, `{' '.join(FCN_SETTINGS)}`). Every page gives each number",
        "with its 95% interval over the validation images, the paired difference against the paper's default",
        "on the same images and seed, and the paper's own figures for the same rows where it has them (its",
        "tables are on Cityscapes labels -> photo at 256 px, so the scales differ; the orderings are what to",
        "compare). Pages and grids are written by `experiments/studies.py`; every run resumes where it stopped,",
        "and what a page needs of a finished run is kept in `experiments/records/` (in git), so a study grows",
        "over several sittings and a recorded run is not trained again (delete its record to rerun it); the",
        "FCN-score's segmenter is kept there too (`segmenters/facades.pt`), so every record is scored by it.",
        "A run whose training or evaluation fails is named at the end and the others go on; a rerun retries",
        "it. Below each page's paired differences, the rows are sorted by whether they lie above or below the",
        "paper's default in every seed (the FCN-score's per-pixel accuracy, or SSIM without it) or neither.",
        "",
    ]
    for study in STUDIES:
        page = PAGES / f"{study.name}.md"
        recorded = any(is_recorded(record_folder(study, row, seed)) for seed in study.seeds for row in study.rows)
        title = f"[{study.title}]({page.name})" if page.exists() else study.title
        pending = "" if page.exists() and recorded else " (not yet run)"
        lines.append(f"- {title}{pending}: `python experiments/studies.py {study.name}`")
    PAGES.mkdir(parents=True, exist_ok=True)
    (PAGES / "index.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
