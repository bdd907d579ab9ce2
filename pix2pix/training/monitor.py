"""What a run shows while it trains: validation scores, sample grids, and the per-epoch log (console,
RUN/log.csv, TensorBoard). Outputs are made as `pix2pix test` makes them by default."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from pix2pix.config import RunConfig
from pix2pix.cycle_losses import cycle_loss
from pix2pix.data import PairedDataset
from pix2pix.data.tensors import lab_batch_to_rgb
from pix2pix.data.unpaired import UnpairedDataset
from pix2pix.losses import float_logits, generator_loss
from pix2pix.nn.modes import run_for_inference, set_training_mode
from pix2pix.training.state import LOSS_NAMES
from pix2pix.training.step import what_d_sees
from pix2pix.visuals import make_grid

VAL_METRICS = ("l1", "psnr", "ssim")
VAL_LOSSES = ("G_GAN", "G_L1", "G")  # the generator's objective on the validation pairs
TENSORBOARD_MISSING = (
    "tensorboard is not installed: pip install 'pix2pix[tensorboard]' for TensorBoard logs; "
    "log.csv has the same numbers"
)
logger = logging.getLogger(__name__)

VAL_FIELDS = tuple(f"val_{name}" for name in (*VAL_METRICS, *VAL_LOSSES))
CYCLE_VAL_FIELDS = tuple(f"val_{name}" for name in (*VAL_METRICS, "cycle_A", "cycle_B"))
LOG_FIELDS = ("epoch", "iteration", "lr", *LOSS_NAMES, *VAL_FIELDS, "seconds")


def translate_as_at_test_time(generator, sources, device: torch.device) -> list[torch.Tensor]:
    """Outputs as `pix2pix test` makes them by default: dropout on, batch statistics, seed 0, one image
    at a time (batch statistics over several images would mix them)."""
    outputs = [
        run_for_inference(generator, source[None].to(device), dropout=True, norm_stats="batch", seed=0)[0].cpu()
        for source in sources
    ]
    set_training_mode(generator)
    return outputs


def translate_round_trips(g_a, g_b, real_a, real_b, device: torch.device) -> tuple[list[torch.Tensor], ...]:
    """CycleGAN's four test-time translations: fake B = G_A(A), its way back G_B(fake B), and the same from B."""
    fake_b = translate_as_at_test_time(g_a, real_a, device)
    fake_a = translate_as_at_test_time(g_b, real_b, device)
    return (
        fake_b,
        translate_as_at_test_time(g_b, fake_b, device),
        fake_a,
        translate_as_at_test_time(g_a, fake_a, device),
    )


def check_fits_ssim(dataset: PairedDataset) -> None:
    """Refuse at start, not at the first validation an epoch in, validation images too small for SSIM
    (at the size they are translated at; headers only)."""
    refuse_too_small_for_ssim((pair.a_path, dataset.test_time_size(i)) for i, pair in enumerate(dataset.pairs))


def refuse_too_small_for_ssim(sizes: Iterable[tuple[Path, tuple[int, int]]]) -> None:
    """ValueError naming the first image whose (width, height) at validation is below SSIM's window."""
    from pix2pix.metrics import SSIM_MIN_SIDE

    for path, (width, height) in sizes:
        if min(width, height) < SSIM_MIN_SIDE:
            raise ValueError(
                f"--val-every: {path} is validated at {width}x{height}, but SSIM needs at least "
                f"{SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} pixels; validate larger images or leave --val-every at 0"
            )


def validate(
    generator, discriminator, dataset: PairedDataset, device: torch.device, config: RunConfig
) -> dict[str, float]:
    """Mean L1/PSNR/SSIM of the split's translations, and the generator's loss terms on them."""
    from pix2pix.metrics import evaluate_pairs  # needs scikit-image (the [eval] extra)

    items = [dataset[i] for i in range(len(dataset))]
    outputs = translate_as_at_test_time(generator, [item["source"] for item in items], device)
    triples = [
        to_rgb(item["source"], output, item["target"], dataset.color_space) for item, output in zip(items, outputs)
    ]
    scores = evaluate_pairs([output for _, output, _ in triples], [target for _, _, target in triples])
    losses = validation_losses(discriminator, items, outputs, device, config)
    return {**{name: scores[name] for name in VAL_METRICS}, **losses}


@dataclass(frozen=True)
class CycleValidation:
    """A CycleGAN run's validation split. `paired`: its A and B images are counterparts (the same names in
    the same order and sizes, as `pix2pix data unpair` keeps held-out pairs), so G_A's translations can be
    scored against them."""

    dataset: UnpairedDataset
    paired: bool


def load_cycle_validation(dataset: UnpairedDataset) -> CycleValidation:
    """Checked at start (headers only): counterparts, and SSIM's minimum size when they are scored."""
    a_sizes = [dataset.test_time_size(path) for path in dataset.a_paths]
    b_sizes = [dataset.test_time_size(path) for path in dataset.b_paths]
    a_names, b_names = [path.stem for path in dataset.a_paths], [path.stem for path in dataset.b_paths]
    paired = a_names == b_names and a_sizes == b_sizes
    if paired:
        refuse_too_small_for_ssim(zip(dataset.b_paths, b_sizes))
    return CycleValidation(dataset, paired)


def validate_cycle(g_a, g_b, validation: CycleValidation, device: torch.device, config: RunConfig) -> dict[str, float]:
    """The cycle terms of the split's test-time translations (lambda x L1 of each image against its round
    trip, as log.csv's training terms) and, for a paired split, L1/PSNR/SSIM of G_A's translations."""
    from pix2pix.metrics import evaluate_pairs  # needs scikit-image (the [eval] extra)

    real_a, real_b = validation.dataset.test_time_images("A"), validation.dataset.test_time_images("B")
    fake_b, rec_a, fake_a, rec_b = translate_round_trips(g_a, g_b, real_a, real_b, device)
    loss = config.loss
    scores = {
        "cycle_A": sum(cycle_loss(r, x, loss.lambda_a).item() for r, x in zip(rec_a, real_a)) / len(real_a),
        "cycle_B": sum(cycle_loss(r, x, loss.lambda_b).item() for r, x in zip(rec_b, real_b)) / len(real_b),
    }
    if validation.paired:
        paired_scores = evaluate_pairs(fake_b, real_b)
        scores.update({name: paired_scores[name] for name in VAL_METRICS})
    return scores


def validation_losses(
    discriminator, items: list[dict[str, torch.Tensor]], outputs: list[torch.Tensor], device: torch.device, config
) -> dict[str, float]:
    """G_GAN, G_L1 and G of the test-time translations, with D in eval mode (running statistics, no update):
    logged beside the image scores, to see whether the generator's loss follows image quality. G is the
    paper's objective, G_GAN + lambda * G_L1 (without an opt-in feature-matching term)."""
    sums = dict.fromkeys(VAL_LOSSES, 0.0)
    if discriminator is not None:
        discriminator.eval()
    with torch.no_grad():
        for item, output in zip(items, outputs):
            source, fake, target = (x[None].to(device) for x in (item["source"], output, item["target"]))
            fake_logits = None
            if discriminator is not None:
                fake_logits = float_logits(discriminator(what_d_sees(source, fake, config.model.disc_conditional)))
            losses = generator_loss(fake_logits, fake, target, config.loss.gan_mode, config.loss.l1_weight)
            for name in VAL_LOSSES:
                sums[name] += losses[name].item()
    if discriminator is not None:
        discriminator.train()
    names = VAL_LOSSES if discriminator is not None else ("G_L1", "G")  # without D there is no G_GAN
    return {name: sums[name] / len(items) for name in names}


def is_improvement(scores: dict[str, float], best: dict[str, float] | None, metric: str) -> bool:
    if best is None:
        return True
    return scores[metric] < best[metric] if metric == "l1" else scores[metric] > best[metric]


def to_rgb(
    source: torch.Tensor, output: torch.Tensor, target: torch.Tensor, color_space: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input, output, target) as images to look at and measure: Lab runs show L as gray, L + ab in RGB."""
    if color_space != "lab":
        return source, output, target
    lightness, no_colour = source[None], torch.zeros_like(target)  # (1, 1, H, W), (2, H, W)
    gray, colorized, real = (lab_batch_to_rgb(lightness, ab[None])[0] for ab in (no_colour, output, target))
    return gray, colorized, real


def save_sample_grid(
    generator, batch: dict[str, torch.Tensor], device: torch.device, path: Path, *, color_space: str = "rgb"
) -> None:
    """input | output | target rows, translated as at test time by default (dropout on, batch stats)."""
    outputs = translate_as_at_test_time(generator, batch["source"], device)
    rows = [
        list(to_rgb(source, output, target, color_space))
        for source, output, target in zip(batch["source"], outputs, batch["target"])
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    make_grid(rows).save(path)


class EpochLog:
    """Per-epoch losses in RUN/log.csv; on resume, rows past the resumed epoch are dropped."""

    def __init__(self, run_dir: Path, keep_through_epoch: int, fields: Sequence[str] = LOG_FIELDS):
        self.path = run_dir / "log.csv"
        self.fields = fields
        rows = []
        if keep_through_epoch > 0 and self.path.exists():
            with self.path.open() as f:
                rows = [row for row in csv.DictReader(f) if int(row["epoch"]) <= keep_through_epoch]
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.fields)
            writer.writeheader()
            writer.writerows(rows)

    def append(self, row: dict[str, float]) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.fields).writerow({name: row.get(name, "") for name in self.fields})


def open_tensorboard(run_dir: Path):
    """A TensorBoard writer for RUN/tensorboard, or None (after one warning) without the tensorboard package:
    it is an optional extra, and log.csv holds the same numbers."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # imported late: it costs a second at start-up
    except ModuleNotFoundError as error:
        if error.name != "tensorboard":
            raise  # a broken install of something else is not "tensorboard is missing"
        logger.warning(TENSORBOARD_MISSING)
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def report_epoch(
    row: dict[str, float],
    log: EpochLog,
    writer,
    *,
    total_epochs: int,
    console: bool,
    loss_names: Sequence[str] = LOSS_NAMES,
) -> None:
    """One epoch's losses, validation scores, lr and time, to every place the run reports to."""
    log.append(row)
    scores = {name.removeprefix("val_"): value for name, value in row.items() if name.startswith("val_")}
    if writer is not None:
        for name in (*loss_names, "lr"):
            writer.add_scalar(f"train/{name}", row[name], row["epoch"])
        for name, value in scores.items():
            writer.add_scalar(f"val/{name}", value, row["epoch"])
        writer.flush()
    if console:
        tqdm.write(
            f"epoch {row['epoch']}/{total_epochs}  it {row['iteration']}  "
            + "  ".join(f"{name} {row[name]:.4f}" for name in loss_names)
            + "".join(f"  val_{name} {value:.4f}" for name, value in scores.items())
            + f"  lr {row['lr']:.2e}  {row['seconds']:.0f}s"
        )
