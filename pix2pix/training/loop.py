"""fit(config): the training run, read top to bottom.

Epochs of D/G steps, the paper's learning-rate schedule (constant, then linear decay to zero), per-epoch
logs and sample grids (monitor.py), and atomic checkpoints of the whole state (state.py) that resume
exactly, also mid-epoch.
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from pix2pix.checkpoint import (
    CHECKPOINT_DIR,
    LATEST,
    checkpoint_config,
    load_checkpoint,
    prune_checkpoints,
    read_checkpoint_file,
    remove_stale_temporaries,
    resolve_checkpoint,
    run_folder_of,
    save_checkpoint,
)
from pix2pix.config import RunConfig
from pix2pix.data import PairedDataset
from pix2pix.data.builtin import resolve_data_root
from pix2pix.devices import default_num_workers
from pix2pix.losses import Objective
from pix2pix.nn.generators import generator_stride
from pix2pix.training.acceleration import plan_acceleration, prepare_for_step
from pix2pix.training.distributed import Process, end_process, shard_order, start_process, sum_across_processes
from pix2pix.training.inputs import build_dataset, check_val_split, checked_pairs, load_sample_batch
from pix2pix.training.monitor import (
    LOG_FIELDS,
    EpochLog,
    check_fits_ssim,
    is_improvement,
    open_tensorboard,
    report_epoch,
    save_sample_grid,
    validate,
)
from pix2pix.training.state import (
    LOSS_NAMES,
    SavedRun,
    TrainingState,
    build_training_state,
    linear_decay,
    update_ema,
)
from pix2pix.training.step import objective_of, train_step
from pix2pix.visuals import write_progress_gif

__all__ = ["TrainingInterrupted", "TrainingStopped", "epoch_order", "fit", "linear_decay"]

logger = logging.getLogger(__name__)

NAN_LR_FACTOR = 0.5  # --nan-retries: the learning rate is multiplied by this at each rollback


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A random stream of its own for one epoch, a pure function of (seed, epoch) so resume replays it."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def epoch_order(num_items: int, seed: int, epoch: int) -> list[int]:
    """The shuffled sample order of one epoch."""
    return torch.randperm(num_items, generator=epoch_generator(seed, epoch)).tolist()


class TrainingStopped(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message says where and what is kept."""


class NonFiniteLoss(TrainingStopped):
    """A loss turned NaN or infinite; the weights of that step are not saved."""


class TrainingInterrupted(Exception):
    """A stop was requested; the run was checkpointed and can be resumed (the message says how)."""


class StopRequest:
    """SIGINT/SIGTERM ask the loop to finish the current iteration, checkpoint and exit cleanly."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # signals only reach the main thread
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self.request)
        return self

    def request(self, signum, frame) -> None:
        if self.requested:  # a second Ctrl-C means now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def fit(config: RunConfig, *, resume: str | None = None, progress: bool = True) -> Path:
    """Train pix2pix as `config` says; returns the run folder."""
    if config.model.model != "pix2pix":  # refused rather than trained as pix2pix
        raise ValueError(f'model.model = "{config.model.model}": train it with training.cycle_loop.fit_cyclegan')
    return train_with_retries(fit_once, config, resume=resume, progress=progress)


class Attempt(Protocol):
    def __call__(self, config: RunConfig, process: Process, *, resume: str | None, progress: bool) -> Path: ...


def train_with_retries(attempt: Attempt, config: RunConfig, *, resume: str | None, progress: bool) -> Path:
    """`attempt` (fit_once, or CycleGAN's) in this process, joined to torchrun's others if any.

    With `train.nan_retries`, a non-finite loss sends the run back to its last checkpoint (or its start)
    with the learning rates halved, up to that many times; every process takes the same decision.
    """
    config = config.checked()  # refused before it trains, not when the finished run is loaded
    process = start_process(config.train.device)
    try:
        # once, before the first attempt: a retry from the start writes on into the folder it began
        refuse_to_overwrite(Path(config.train.out), resume, process)
        retries_left = config.train.nan_retries
        while True:
            try:
                return attempt(config, process, resume=resume, progress=progress and process.is_main)
            except NonFiniteLoss as err:
                has_checkpoint = (Path(config.train.out) / CHECKPOINT_DIR / LATEST).exists()
                if retries_left <= 0:
                    raise give_up_on_non_finite_loss(err, config, has_checkpoint) from None
                retries_left -= 1
                optim = config.optim
                config = config.replace("optim", lr=optim.lr * NAN_LR_FACTOR, disc_lr=optim.disc_lr * NAN_LR_FACTOR)
                resume = "auto" if has_checkpoint else None
                if process.is_main:
                    where = "the last checkpoint" if has_checkpoint else "the start"
                    logger.warning("%s: going back to %s with --lr %g", err, where, config.optim.lr)
    finally:
        end_process(process)


def give_up_on_non_finite_loss(err: NonFiniteLoss, config: RunConfig, has_checkpoint: bool) -> NonFiniteLoss:
    checkpoint_dir = Path(config.train.out) / CHECKPOINT_DIR
    kept = f"the last good checkpoint is kept in {checkpoint_dir}" if has_checkpoint else "no checkpoint yet"
    return NonFiniteLoss(
        f"{err}; stopped ({kept}). Try a lower --lr (or --nan-retries N), and check the data for broken images."
    )


def fit_once(config: RunConfig, process: Process, *, resume: str | None, progress: bool) -> Path:
    """One attempt at the run, in every process; only the main process (rank 0) writes files."""
    run_dir = Path(config.train.out)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--out {run_dir} is a file, not a folder")
    acceleration = plan_acceleration(config, process)  # precision, channels_last, compile, SyncBatchNorm
    torch.manual_seed(config.train.seed)
    random.seed(config.train.seed)
    run = build_training_state(config, process.device, acceleration)
    data = load_training_data(config, generator_stride(run.generator))
    if resume:
        checkpoint = resolve_resume(resume, run_dir)
        restore_run(run, config, checkpoint)
        keep_saved_totals_on_main(run, process)
        if process.is_main:
            logger.info("resumed from %s (iteration %d)", checkpoint, run.iteration)
    # the updates go through DDP/compiled/SyncBatchNorm views; checkpoints and samples use the bare networks
    steps = StepNetworks(
        prepare_for_step(run.generator, acceleration, process),
        prepare_for_step(run.discriminator, acceleration, process) if run.discriminator else None,
        acceleration.memory_format,
    )
    files = RunFiles(config, run, process.device) if process.is_main else None
    total_epochs = config.optim.total_epochs
    if process.is_main and run.epoch >= total_epochs:
        logger.warning(
            "%s has trained all %d epochs already; nothing to do (raise --n-epochs or --n-epochs-decay to train "
            "longer)",
            run_dir,
            total_epochs,
        )
    elif process.is_main:
        logger.info(
            "training %s on %s: %d pairs, epochs %d to %d",
            run_dir,
            process.device,
            len(data.train),
            run.epoch + 1,
            total_epochs,
        )
    with StopRequest() as stop:
        for epoch in range(run.epoch, total_epochs):
            started = time.perf_counter()
            batches = train_epoch(config, run, steps, data.train, epoch, process, stop, files, progress=progress)
            row = end_epoch_schedule(run, epoch, batches, process)
            if files is not None:  # the rest of the epoch is logging, samples and checkpoints: rank 0's work
                files.finish_epoch(run, data, row, started=started, console=progress)
    if files is not None:
        files.close()
    return run_dir


@dataclass
class TrainingData:
    train: PairedDataset
    val: PairedDataset | None  # only with --val-every
    sample_batch: dict[str, torch.Tensor]  # the fixed images of every sample grid


def load_training_data(config: RunConfig, stride: int) -> TrainingData:
    """The training split (checked first: bad images are named before any work), validation and samples."""
    data_root = resolve_data_root(config.data.data)
    check_val_split(data_root, config.data.val_split)
    pairs = checked_pairs(data_root, skip_bad=config.train.skip_bad)
    train = build_dataset(config, data_root, "train", stride, train=True, pairs=pairs)
    sample_batch = load_sample_batch(config, data_root, stride, train_pairs=pairs)
    val = None
    if config.train.val_every > 0:
        val = build_dataset(config, data_root, config.data.val_split, stride, train=False)
        check_fits_ssim(val)
    return TrainingData(train, val, sample_batch)


def restore_run(run: TrainingState, config: RunConfig, checkpoint: Path) -> None:
    state, saved = load_checkpoint(checkpoint)
    try:
        run.restore(state, config)
    except (RuntimeError, ValueError) as error:  # load_state_dict: other layers, other optimizer groups
        changes = "; ".join(config.differences(saved, ("data", "model"))) or "see its config.json"
        raise ValueError(
            f"{checkpoint}: its networks differ from the ones this config builds ({changes}); resume without "
            "those flags, or start a new run with another --out"
        ) from error


@dataclass
class StepNetworks:
    """The views of G and D that the training step updates, and the memory format of their batches."""

    generator: torch.nn.Module
    discriminator: torch.nn.Module | None
    memory_format: torch.memory_format


def train_epoch(
    config: RunConfig,
    run: TrainingState,
    steps: StepNetworks,
    dataset: PairedDataset,
    epoch: int,
    process: Process,
    stop: StopRequest,
    files: RunFiles | None,
    *,
    progress: bool,
) -> int:
    """The D/G steps of one epoch (from where a resumed epoch stopped), with mid-epoch checkpoints;
    returns the number of batches in the whole epoch."""
    optim, device = config.optim, process.device
    dataset.set_epoch(epoch)
    order = shard_order(epoch_order(len(dataset), config.train.seed, epoch), process)
    first_batch = run.batch if epoch == run.epoch else 0
    if first_batch == 0:
        run.totals = dict.fromkeys(LOSS_NAMES, 0.0)
    objective = objective_of(config)
    batches_in_epoch = math.ceil(len(order) / optim.batch_size)
    bar = epoch_batches(config, dataset, order, epoch, first_batch, device, progress=progress)
    for batch_index, batch in enumerate(bar, start=first_batch):
        source = batch["source"].to(device, non_blocking=True, memory_format=steps.memory_format)
        target = batch["target"].to(device, non_blocking=True, memory_format=steps.memory_format)
        losses = train_iteration(run, steps, source, target, objective, optim.ema_decay)
        stop_requested = vote_to_stop(losses, stop, run, epoch, process)
        run.iteration += 1
        for name in LOSS_NAMES:
            run.totals[name] += losses.get(name, 0.0)
        bar.set_postfix({name: f"{losses.get(name, 0.0):.3f}" for name in LOSS_NAMES})
        save_mid_epoch(config, run, files, process, bar, epoch, batch_index + 1, stop_requested=stop_requested)
    return batches_in_epoch


def train_iteration(
    run: TrainingState,
    steps: StepNetworks,
    source: torch.Tensor,
    target: torch.Tensor,
    objective: Objective,
    ema_decay: float,
) -> dict[str, float]:
    """One D/G step on a batch, then the moving average of G's weights when the run keeps one."""
    losses = train_step(
        steps.generator,
        steps.discriminator,
        run.opt_g,
        run.opt_d,
        source,
        target,
        objective=objective,
        precision=run.precision,
    )
    if run.generator_ema is not None:
        update_ema(run.generator_ema, run.generator, ema_decay)
    return losses


def save_mid_epoch(
    config: RunConfig,
    run: SavedRun,
    files: RunFiles | None,
    process: Process,
    bar: tqdm,
    epoch: int,
    batches_done: int,
    *,
    stop_requested: bool,
) -> None:
    """latest.pt every --save-every-iters iterations; on a stop request, latest.pt and then TrainingInterrupted
    (`files` is None in the processes that write nothing)."""
    every_iters = config.train.save_every_iters
    if stop_requested or (every_iters and run.iteration % every_iters == 0):
        pool_totals_on_main(run, process)  # every process decides alike: the all-reduce is collective
        if files is not None:
            files.save(run, None, epoch, batches_done)
    if stop_requested:
        bar.close()
        raise TrainingInterrupted(
            f"stopped at epoch {epoch + 1}, iteration {run.iteration}; checkpoint saved. "
            f"Resume with: pix2pix train --resume auto --out {config.train.out}"
        )


def epoch_batches(
    config: RunConfig,
    dataset: torch.utils.data.Dataset,
    order: list[int],
    epoch: int,
    first_batch: int,
    device: torch.device,
    *,
    progress: bool,
) -> tqdm:
    """The epoch's batches in `order`, from `first_batch` on (a resumed epoch skips what it has seen), under
    a progress bar.

    A new loader (and workers) per epoch, not persistent workers: a worker holds the copy of the dataset
    made when it started, which set_epoch does not reach, so it would repeat that epoch's jitter. Its own
    generator: starting an iterator draws a seed for the workers, which from the global stream would shift
    the dropout draws after a mid-epoch resume (restored state, then one extra draw)."""
    batch_size = config.optim.batch_size
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=order[first_batch * batch_size :],
        num_workers=config.data.num_workers if config.data.num_workers >= 0 else default_num_workers(device),
        pin_memory=device.type == "cuda",
        generator=epoch_generator(config.train.seed, epoch),
    )
    return tqdm(
        loader,
        desc=f"epoch {epoch + 1}/{config.optim.total_epochs}",
        initial=first_batch,
        total=math.ceil(len(order) / batch_size),
        disable=not progress,
        leave=False,
    )


def vote_to_stop(losses: dict[str, float], stop: StopRequest, run: SavedRun, epoch: int, process: Process) -> bool:
    """Whether any process was asked to stop; raises NonFiniteLoss if any process saw a NaN/inf loss.
    Every process must stop at the same iteration, or the others would wait forever."""
    bad = [name for name, value in losses.items() if not math.isfinite(value)]
    stop_votes, bad_votes = sum_across_processes([float(stop.requested), float(bool(bad))], process)
    if bad_votes:
        # the weights are already poisoned: keep latest.pt as it was, the last good state
        terms = ", ".join(f"{name}={losses[name]}" for name in bad) or "in another process"
        raise NonFiniteLoss(f"non-finite loss ({terms}) at iteration {run.iteration + 1} (epoch {epoch + 1})")
    return bool(stop_votes)


def pool_totals_on_main(run: SavedRun, process: Process) -> None:
    """Move all processes' epoch loss sums onto rank 0, so that the checkpoint it writes holds the whole
    global batch's; the sum over processes, which the epoch's means divide, stays the same."""
    if not process.distributed:
        return
    names = list(run.totals)
    summed = sum_across_processes([run.totals[name] for name in names], process)
    run.totals = dict(zip(names, summed)) if process.is_main else dict.fromkeys(names, 0.0)


def keep_saved_totals_on_main(run: SavedRun, process: Process) -> None:
    """After a resume: every process loaded rank 0's checkpoint, whose epoch sums are already all processes'
    (pool_totals_on_main); counted on rank 0 alone, or the resumed epoch's means would count them N times."""
    if not process.is_main:
        run.totals = dict.fromkeys(run.totals, 0.0)


def end_epoch_schedule(
    run: SavedRun, epoch: int, batches: int, process: Process, loss_names: tuple[str, ...] = LOSS_NAMES
) -> dict[str, float]:
    """Step the learning-rate schedule; the epoch's log row, with the mean losses over all processes."""
    lr = run.opt_g.param_groups[0]["lr"]
    for scheduler in run.schedulers:
        scheduler.step()
    summed = sum_across_processes([run.totals[name] for name in loss_names], process)
    means = {name: total / (batches * process.world_size) for name, total in zip(loss_names, summed)}
    return {"epoch": epoch + 1, "iteration": run.iteration, "lr": lr, **means}


class RunFiles:
    """What the main process writes into the run folder: config.json, log.csv, TensorBoard, sample grids and
    checkpoints. Opening it checks the disk and removes the temporaries of a write that a kill cut short.
    (CycleGAN's loop writes its epochs' outputs itself, with its own `log_fields`.)"""

    def __init__(self, config: RunConfig, run: SavedRun, device: torch.device, log_fields: Sequence[str] = LOG_FIELDS):
        self.config, self.device = config, device
        self.run_dir = Path(config.train.out)
        self.checkpoint_dir = self.run_dir / CHECKPOINT_DIR
        self.run_dir.mkdir(parents=True, exist_ok=True)
        check_free_space(self.run_dir, run, config)
        remove_stale_temporaries(self.checkpoint_dir)
        config.save_json(self.run_dir / "config.json")
        self.log = EpochLog(self.run_dir, keep_through_epoch=run.epoch, fields=log_fields)
        self.writer = open_tensorboard(self.run_dir) if config.train.tensorboard else None

    def finish_epoch(
        self, run: TrainingState, data: TrainingData, row: dict[str, float], *, started: float, console: bool
    ) -> None:
        """Validation, the log row, best.pt, the sample grid and the epoch checkpoint, each at its cadence."""
        with self.stopping_on_write_errors(run, "the epoch's log, samples or checkpoint"):
            self.write_epoch_outputs(run, data, row, started=started, console=console)

    def write_epoch_outputs(
        self, run: TrainingState, data: TrainingData, row: dict[str, float], *, started: float, console: bool
    ) -> None:
        train, epoch = self.config.train, int(row["epoch"])  # epochs done
        total_epochs = self.config.optim.total_epochs
        last = epoch == total_epochs
        scores = {}
        if data.val is not None and (epoch % train.val_every == 0 or last):
            scores = validate(run.generator_for_inference, run.discriminator, data.val, self.device, self.config)
            row.update({f"val_{name}": value for name, value in scores.items()})
        row["seconds"] = time.perf_counter() - started
        report_epoch(row, self.log, self.writer, total_epochs=total_epochs, console=console)
        if scores and is_improvement(scores, run.best_scores, train.best_metric):
            run.best_scores = scores
            self.save(run, "best.pt", epoch, 0)
        if epoch % train.sample_every == 0 or last:
            self.save_samples(run, data.sample_batch, epoch)
        if epoch % train.save_every == 0 or last:
            self.save(run, f"epoch_{epoch:04d}.pt", epoch, 0)
        elif train.save_every_iters:
            self.save(run, None, epoch, 0)  # latest.pt must not lag behind an epoch boundary

    def save_samples(self, run: TrainingState, sample_batch: dict[str, torch.Tensor], epoch: int) -> None:
        samples_dir = self.run_dir / "samples"
        grid_path = samples_dir / f"epoch_{epoch:04d}.png"
        save_sample_grid(
            run.generator_for_inference, sample_batch, self.device, grid_path, color_space=self.config.data.color_space
        )
        write_progress_gif(sorted(samples_dir.glob("epoch_*.png")), samples_dir / "progress.gif")

    def save(self, run: SavedRun, name: str | None, epoch: int, batch: int) -> None:
        """latest.pt always (not for best.pt); `name` too (an epoch checkpoint), pruned to the newest K.

        latest.pt is written first, so that a write failing in between leaves it no older than the newest
        epoch checkpoint (a resume starts from latest.pt)."""
        state = run.to_checkpoint(self.config, epoch=epoch, batch=batch)
        with self.stopping_on_write_errors(run, name or LATEST):
            if name != "best.pt":
                save_checkpoint(self.checkpoint_dir / LATEST, state)
            if name is not None:
                save_checkpoint(self.checkpoint_dir / name, state)
                prune_checkpoints(self.checkpoint_dir, self.config.train.keep_checkpoints)

    @contextmanager
    def stopping_on_write_errors(self, run: SavedRun, what: str) -> Iterator[None]:
        """A write that fails (a full disk, a quota) stops the run in one line with the resume command: the
        checkpoints written so far are intact (atomic writes), and a resume redoes what came after them."""
        try:
            yield
        except OSError as error:
            raise TrainingStopped(
                f"{self.run_dir}: could not write {what} ({error.strerror or error}); checkpoints need about "
                f"{checkpoint_mib(run, self.config):.0f} MiB free. The last checkpoint is kept: free some space, "
                f"then resume with: pix2pix train --resume auto --out {self.run_dir}"
            ) from None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def checkpoint_mib(run: SavedRun, config: RunConfig) -> float:
    """The size of two checkpoints (a write goes to a temporary file beside the file it replaces):
    float32 weights plus Adam's two moments for each network, and what else the run keeps (CycleGAN's pools)."""
    values = sum(t.numel() for net in run.networks for t in (*net.parameters(), *net.buffers()))
    return 2 * 4 * (3 * values + run.checkpointed_values(config)) / 2**20


def check_free_space(run_dir: Path, run: SavedRun, config: RunConfig) -> None:
    """Refuse to start when the disk cannot hold two checkpoints. A full disk found hours in ends the
    run (resumable); found now it costs nothing."""
    free, needed = shutil.disk_usage(run_dir).free / 2**20, checkpoint_mib(run, config)
    if free < needed:
        raise ValueError(
            f"{run_dir}: {free:.0f} MiB free, but checkpoints need about {needed:.0f} MiB; "
            "free some space or choose another --out"
        )


def refuse_to_overwrite(run_dir: Path, resume: str | None, process: Process) -> None:
    """A run never writes into a folder that holds another run: a new run, or one resumed from another
    folder (`--resume A --out B`), needs an `--out` without a run's checkpoints or logged training (a run
    that stopped before its first epoch, e.g. on a bad image, is started again in place). Decided by all
    processes together, so that on nodes without a shared disk (where only rank 0's node has the folder)
    every process stops."""
    # from the path alone: resolving it would read the checkpoints (and warn of a damaged one) a second time
    if resume == "auto" or (resume and run_folder_of(Path(resume)).resolve() == run_dir.resolve()):
        return  # continuing the run that is there
    has_checkpoints = any((run_dir / CHECKPOINT_DIR).glob("*.pt"))
    log = run_dir / "log.csv"
    has_logged = log.is_file() and len(log.read_text(errors="replace").splitlines()) > 1  # rows past the header
    held = sum_across_processes([float(has_checkpoints), float(has_logged)], process)
    elsewhere = f"resume {resume} into a new --out" if resume else "train into another --out"
    if held[0]:
        raise ValueError(
            f"{run_dir} already holds a run's checkpoints; continue it with --resume auto --out {run_dir}, "
            f"or {elsewhere} (or delete that folder first)"
        )
    if held[1]:
        raise ValueError(
            f"{run_dir} already holds a run that logged training (log.csv) but saved no checkpoint to resume; "
            f"{elsewhere}, or delete that folder first"
        )


def resolve_resume(resume: str, run_dir: Path) -> Path:
    """`auto` means the run folder's latest checkpoint."""
    return resolve_checkpoint(run_dir if resume == "auto" else resume)


def resumed_config(resume: str, run_dir: Path) -> RunConfig:
    """The config the run to resume was saved with, writing on into its own folder: what `train --resume`
    builds on, so that `--resume auto --out RUN` alone continues RUN exactly as it was started."""
    checkpoint = resolve_resume(resume, run_dir)
    saved = checkpoint_config(read_checkpoint_file(checkpoint, lazy=True), checkpoint)
    return saved.replace("train", out=str(run_dir if resume == "auto" else run_folder_of(checkpoint)))
