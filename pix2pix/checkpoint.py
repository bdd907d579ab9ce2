"""Self-describing checkpoints: weights, optimisers, schedule, counters, RNG state and the config.

Reading and writing only: what goes into one is pix2pix.training.state's, the networks a config
describes are pix2pix.networks'. Written atomically (pix2pix.atomic: temporary file, fsync, rename) so a
crash mid-write never replaces a good file.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import torch

from pix2pix.atomic import write_atomically
from pix2pix.config import RunConfig

FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.pt"

logger = logging.getLogger(__name__)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` (plus format version) to `path` atomically; a failed write is an OSError."""
    path = Path(path)
    payload = {**state, "format_version": FORMAT_VERSION}  # always the format this code writes

    def write(file: BinaryIO) -> None:
        try:
            torch.save(payload, file)
        except RuntimeError as error:  # torch's zip writer reports a failed write (a full disk) this way
            if shutil.disk_usage(path.parent).free < 2**20:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from error
            raise OSError(errno.EIO, f"writing failed ({str(error).strip().splitlines()[-1]})") from error

    write_atomically(path, write)


def remove_stale_temporaries(checkpoint_dir: Path) -> None:
    """Delete the temporary files of writes that a kill cut short (the size of a checkpoint each; named as
    `write_atomically` names them). Call before a run writes: a run writes one checkpoint at a time, so any
    found then are stale."""
    for path in checkpoint_dir.glob(".*.pt.*.tmp"):
        path.unlink(missing_ok=True)


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder (or its checkpoints folder) means its newest readable checkpoint; a file is taken as is."""
    path = Path(path)
    if path.is_dir():
        return find_latest_readable(path if is_checkpoints_folder(path) else path / CHECKPOINT_DIR)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    return path


def run_folder_of(path: Path) -> Path:
    """The run folder of a checkpoint: RUN for RUN, RUN/checkpoints or RUN/checkpoints/NAME.pt, else the
    file's folder."""
    if path.is_dir():
        return path.parent if is_checkpoints_folder(path) else path
    return path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent


def is_checkpoints_folder(folder: Path) -> bool:
    """RUN/checkpoints itself, rather than a run folder that happens to be named checkpoints."""
    return folder.name == CHECKPOINT_DIR and not (folder / CHECKPOINT_DIR).is_dir()


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
            logger.warning("%s; trying the previous checkpoint", error)
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
    if not isinstance(state.get("config"), dict):
        raise ValueError(f"{path}: a pix2pix checkpoint without its config (damaged or edited)")
    try:
        return RunConfig.from_dict(state["config"])
    except ValueError as error:  # e.g. a value out of today's range: name the file it came from
        raise ValueError(f"{path}: its config: {error}") from None


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], RunConfig]:
    """Load one of our checkpoints; returns the raw state and its config."""
    path = resolve_checkpoint(path)
    state = read_checkpoint_file(path)
    return state, checkpoint_config(state, path)
