"""torchrun support: one code path for 1 and N processes (env-based init, sharded epoch order).

`torchrun --nproc_per_node=N -m pix2pix train ...` sets RANK/WORLD_SIZE/LOCAL_RANK; without them
everything here is the single-process identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pix2pix.devices import resolve_device


@dataclass(frozen=True)
class Process:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def start_process(device_name: str) -> Process:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU), or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Process(0, 1, resolve_device(device_name))
    local_rank = int(os.environ["LOCAL_RANK"])
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Process(dist.get_rank(), world_size, device)


def end_process(process: Process) -> None:
    if process.distributed and dist.is_initialized():
        # leave together: a rank that tears its gloo connections down while rank 0 is still writing
        # checkpoints could abort at exit ("terminate called without an active exception")
        dist.barrier()
        dist.destroy_process_group()


def wrap_for_training(module: nn.Module, process: Process) -> nn.Module:
    """DistributedDataParallel when there are several processes: gradients are averaged across them."""
    if not process.distributed:
        return module
    device_ids = [process.device.index] if process.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper (itself compiled under --compile): what one process would call."""
    return module.module if isinstance(module, DistributedDataParallel) else module


def shard_order(order: list[int], process: Process) -> list[int]:
    """This process's part of the epoch's sample order, padded by wrapping so every rank takes the same
    number of steps (as DistributedSampler does). Rank r takes items r, r + N, ...: so the ranks' k-th
    batches together are the k-th batch of a single process with an N times larger batch."""
    if not process.distributed:
        return order
    per_rank = -(-len(order) // process.world_size)
    padded = (order * process.world_size)[: per_rank * process.world_size]
    return padded[process.rank :: process.world_size]


def sum_across_processes(values: list[float], process: Process) -> list[float]:
    """All-reduced sum (identity for one process): epoch means and stop/failure flags agree on all ranks."""
    if not process.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=process.device)
    dist.all_reduce(tensor)
    return tensor.tolist()
