"""Self-describing checkpoints: weights, optimisers, schedule, counters, RNG state and the config.

Written atomically (temporary file, fsync, rename) so a crash mid-write never replaces a good file.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pix2pix.config import RunConfig
from pix2pix.nn.registry import build_discriminator, build_generator

FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.pt"


def build_generator_for(config: RunConfig) -> nn.Module:
    model = config.model
    return build_generator(
        model.generator,
        in_channels=model.in_channels,
        out_channels=model.out_channels,
        image_size=config.data.crop_size,
        base_channels=model.base_channels,
        norm=model.norm,
        dropout=model.dropout,
        upsample=model.upsample,
    )


def build_discriminator_for(config: RunConfig) -> nn.Module:
    model = config.model
    return build_discriminator(
        model.discriminator,
        in_channels=model.in_channels + model.out_channels,  # conditional: sees input and output
        base_channels=model.disc_channels,
        n_layers=model.disc_layers,
        norm=model.disc_norm,
    )


def capture_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` (plus format version) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format_version": FORMAT_VERSION, **state}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        sync_directory(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(checkpoint_dir: Path) -> None:
    """Delete the temporary files of writes that a kill cut short (the size of a checkpoint each). Call
    before a run writes: a run writes one checkpoint at a time, so any found then are stale."""
    for path in checkpoint_dir.glob(".*.pt.*.tmp"):
        path.unlink(missing_ok=True)


def sync_directory(folder: Path) -> None:
    """fsync the folder so the rename itself survives a power cut (POSIX only)."""
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder means its newest readable checkpoint; a file is taken as is."""
    path = Path(path)
    if path.is_dir():
        return find_latest_readable(path / CHECKPOINT_DIR)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    return path


def run_folder_of(path: Path) -> Path:
    """The run folder of a checkpoint: RUN for RUN or RUN/checkpoints/NAME.pt, else the file's folder."""
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent


def find_latest_readable(checkpoint_dir: Path) -> Path:
    """latest.pt, or if that is damaged (disk error, copied half-way) the newest epoch_*.pt that loads."""
    candidates = [checkpoint_dir / LATEST, *sorted(checkpoint_dir.glob("epoch_*.pt"), reverse=True)]
    candidates = [path for path in candidates if path.exists()]
    if not candidates:
        raise FileNotFoundError(f"{checkpoint_dir.parent}: no checkpoint found in {checkpoint_dir}")
    for path in candidates:
        try:
            read_checkpoint_file(path, lazy=True)
        except ValueError as error:
            warnings.warn(f"{error}; trying the previous checkpoint", stacklevel=2)
            continue
        return path
    raise ValueError(f"{checkpoint_dir}: no readable checkpoint (all {len(candidates)} are damaged)")


def prune_checkpoints(checkpoint_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` epoch_*.pt files (keep = 0: keep all)."""
    if keep > 0:
        for path in sorted(checkpoint_dir.glob("epoch_*.pt"))[:-keep]:
            path.unlink()


def read_checkpoint_file(path: Path, *, lazy: bool = False) -> dict[str, Any]:
    """torch.load with a clear error for files that are not checkpoints.

    `lazy` memory-maps the tensors instead of reading them: for checks, the config and shapes, it costs
    nothing even for a large checkpoint and fails on a truncated file as a full read does. (mmap needs
    torch's zip format; an older file is read in full.)
    """
    if is_torchscript_archive(path):
        raise ValueError(
            f"{path}: a TorchScript export, which is code to run rather than a checkpoint; load it with "
            "torch.jit.load, or give a run folder, a checkpoint, an official state dict or an .onnx export"
        )
    try:
        # weights_only: a checkpoint is data, never code to run
        return torch.load(path, map_location="cpu", weights_only=True, mmap=lazy and zipfile.is_zipfile(path))
    except Exception as error:
        raise ValueError(f"{path}: not a readable checkpoint ({type(error).__name__})") from error


def is_torchscript_archive(path: Path) -> bool:
    """torch.jit.save writes a zip like torch.save's, but with the module's code and constants in it."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def is_our_checkpoint(state: Any) -> bool:
    """Whether a loaded file is one of our checkpoints (else, e.g., an official state dict)."""
    return isinstance(state, dict) and "format_version" in state


def checkpoint_config(state: Any, path: Path) -> RunConfig:
    """The config of `state`, read from `path`, once checked to be our checkpoint in a format we read."""
    if not is_our_checkpoint(state):
        raise ValueError(f"{path}: not a pix2pix checkpoint (no format_version)")
    if state["format_version"] > FORMAT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format {state['format_version']} is newer than this pix2pix "
            f"({FORMAT_VERSION}); upgrade the package"
        )
    return RunConfig.from_dict(state["config"])


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], RunConfig]:
    """Load one of our checkpoints; returns the raw state and its config."""
    path = resolve_checkpoint(path)
    state = read_checkpoint_file(path)
    return state, checkpoint_config(state, path)
