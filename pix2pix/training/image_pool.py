"""The history of generated images that CycleGAN's discriminators train on (Shrivastava et al. 2017):
judging old fakes as well as the newest ones keeps D from chasing G's latest change and damps oscillation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from pix2pix.training.distributed import Process


class ImagePool:
    """Up to `size` past generated images, as the official `image_pool.py`.

    `query` returns, per image, the image itself while the pool fills; once it is full, with probability
    1/2 a stored image that the new one replaces, else the new image. The draws come from torch's global
    RNG, so a checkpoint holding that RNG state and `state_dict()` continues exactly. `size=0` keeps nothing.
    """

    def __init__(self, size: int = 50) -> None:
        if size < 0:
            raise ValueError(f"pool size must be 0 or more, got {size!r}")
        self.size = size
        self.images: list[torch.Tensor] = []  # each (C, H, W), detached

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) new fakes -> (B, C, H, W) fakes for D, detached: the pool never passes gradients."""
        returned = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())  # its own copy: a kept view would hold its whole batch
                returned.append(image)
            elif self.size and torch.rand(()).item() > 0.5:
                slot = int(torch.randint(self.size, ()).item())
                # a pool restored onto another device (map_location) still answers on the fakes' device
                returned.append(self.images[slot].to(device=image.device, dtype=image.dtype))
                self.images[slot] = image.clone()
            else:
                returned.append(image)
        return torch.stack(returned)

    def state_dict(self) -> dict[str, Any]:
        return {"images": list(self.images)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        images = list(state["images"])
        if len(images) > self.size:
            raise ValueError(
                f"the saved pool holds {len(images)} images, more than loss.pool_size = {self.size}: "
                f"resume with --pool-size {len(images)} or more"
            )
        self.images = images


class PoolOfTheGlobalBatch:
    """`pool` queried with the global batch under torchrun, as one process with the N-times larger batch
    would query it: every rank gathers all ranks' fakes, asks its pool (the same draws on every rank, whose
    RNG streams are kept equal), and keeps its own share. So the ranks' pools stay identical, and rank 0's
    checkpoint holds the pool of every rank."""

    def __init__(self, pool: ImagePool, process: Process) -> None:
        self.pool, self.process = pool, process

    def query(self, images: torch.Tensor) -> torch.Tensor:
        ranks = self.process.world_size
        if ranks == 1:
            return self.pool.query(images)
        gathered = [torch.empty_like(images) for _ in range(ranks)]
        dist.all_gather(gathered, images.detach().contiguous())
        # rank r holds items r, r + N, ... of the global batch (distributed.shard_order): interleave them back
        global_batch = torch.stack(gathered, dim=1).flatten(0, 1)
        answered = self.pool.query(global_batch)
        return answered.unflatten(0, (len(images), ranks))[:, self.process.rank]
