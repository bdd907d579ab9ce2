"""Device choice and the device-dependent defaults that go with it."""

from __future__ import annotations

import os

import torch


def resolve_device(name: str) -> torch.device:
    """`auto` means CUDA when present, else Apple's MPS (the GPU of an Apple-silicon Mac), else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:  # torch's message lists two dozen device types pix2pix never runs on
        raise ValueError(f"unknown device {name!r}; allowed: auto, cpu, mps, cuda, cuda:N") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} requested but MPS is not available (it needs an Apple-silicon Mac)")
    return device


def default_num_workers(device: torch.device) -> int:
    # decoding a pair costs ~7 ms against hundreds of ms of CPU compute: on a small CPU machine a
    # worker would only steal a core from the convolutions
    cores = os.cpu_count() or 1
    if device.type == "cuda":
        return min(8, cores)
    return 0 if cores <= 4 else 2


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """The dtype of the training forward passes. `auto` is bf16 on CUDA GPUs with native bf16, else fp32.

    On the CPU, bf16 is an opt-in where the CPU computes it natively (AVX512-BF16 or AMX: a training step
    measured 1.2-1.5x faster than fp32 on a 2-core AMD EPYC with AVX512-BF16) and refused elsewhere, where
    autocast would emulate it in software. fp16 needs CUDA.
    """
    if name == "auto":
        native_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native_bf16 else torch.float32
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; allowed: auto, {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[name]
    if dtype == torch.float32:
        return dtype
    if device.type == "cpu" and dtype == torch.bfloat16:
        if not cpu_has_native_bf16():
            raise ValueError(
                "--precision bf16: this CPU has no native bf16 (AVX512-BF16 or AMX), so it would run much "
                "slower than fp32; use fp32 (or auto) here"
            )
        return dtype
    if device.type != "cuda":
        raise ValueError(f"--precision {name} needs a CUDA device (this run is on {device.type}); use fp32 or auto")
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise ValueError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no native bf16; use fp16")
    return dtype


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (x86 AVX512-BF16 or AMX); torch has no public probe for it."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def resolve_channels_last(setting: str, device: torch.device) -> bool:
    """`auto` is on for CUDA (tensor-core convolutions prefer NHWC) and off for the CPU."""
    if setting not in ("auto", "on", "off"):
        raise ValueError(f"unknown channels_last setting {setting!r}; allowed: auto, on, off")
    return device.type == "cuda" if setting == "auto" else setting == "on"
