"""Micro-batching: network inputs of one shape that arrive within a few milliseconds run as one batch.

On a GPU one forward pass of B images costs little more than one of a single image, so a busy server
answers more requests per second; a lone request waits at most the window.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

Waiting = tuple[np.ndarray, asyncio.Future[np.ndarray]]  # an input and where its output goes


class MicroBatcher:
    """Collects inputs for `window_s` seconds from the first one, then runs those of one shape together
    (at most `max_batch` per batch) with `run_batch` in `executor`, and hands each caller its own output.

    The bookkeeping runs on the event loop's thread alone, so it needs no locks; only `run_batch` runs
    in the executor's threads.
    """

    def __init__(
        self,
        run_batch: Callable[[list[np.ndarray]], list[np.ndarray]],
        *,
        window_s: float,
        max_batch: int,
        executor: Executor,
    ):
        if not 0 < window_s < math.inf or max_batch < 1:  # nan too: a timer that never fires hangs every caller
            raise ValueError(f"need a positive window and max_batch, got {window_s} s and {max_batch}")
        self.run_batch = run_batch
        self.window_s = window_s
        self.max_batch = max_batch
        self.executor = executor
        self.waiting: list[Waiting] = []
        self.timer: asyncio.TimerHandle | None = None
        self.batches: set[asyncio.Task[None]] = set()  # references keep running batches from being collected

    async def translate(self, source: np.ndarray) -> np.ndarray:
        """The output for one input, computed in whichever batch it lands in."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self.waiting.append((source, future))
        if self.timer is None:
            self.timer = loop.call_later(self.window_s, self.flush)
        return await future

    def flush(self) -> None:
        """Start one batch per shape (and per `max_batch` inputs) of everything waiting."""
        self.timer = None
        by_shape: dict[tuple[int, ...], list[Waiting]] = {}
        for source, future in self.waiting:
            if not future.cancelled():  # its client went away while it waited
                by_shape.setdefault(source.shape, []).append((source, future))
        self.waiting = []
        for group in by_shape.values():
            for start in range(0, len(group), self.max_batch):
                batch = asyncio.get_running_loop().create_task(self.run(group[start : start + self.max_batch]))
                self.batches.add(batch)
                batch.add_done_callback(self.batches.discard)

    async def run(self, group: list[Waiting]) -> None:
        sources = [source for source, _ in group]
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(self.executor, self.run_batch, sources)
        except Exception as error:
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), output in zip(group, outputs, strict=True):
            if not future.done():
                future.set_result(output)
