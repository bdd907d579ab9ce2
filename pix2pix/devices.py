"""Device choice and the device-dependent defaults that go with it."""

from __future__ import annotations

import os

import torch


def resolve_device(name: str) -> torch.device:
    """`auto` means CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def default_num_workers(device: torch.device) -> int:
    # decoding a pair costs ~7 ms against hundreds of ms of CPU compute: on a small CPU machine a
    # worker would only steal a core from the convolutions
    cores = os.cpu_count() or 1
    if device.type == "cuda":
        return min(8, cores)
    return 0 if cores <= 4 else 2
