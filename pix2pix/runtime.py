"""Process-wide settings that belong to a program, never to a library: `pix2pix.cli.main` makes them for
its own process, while importing pix2pix (or any of its modules) changes nothing in the host process.

Imports nothing but the standard library: it must run before torch is imported (see below).
"""

from __future__ import annotations

import os


def tune_process_for_cli() -> None:
    """Idle OpenMP threads sleep instead of spinning (`OMP_WAIT_POLICY=PASSIVE`) unless the environment
    already says otherwise.

    On a machine whose cores are shared (laptops, CI, other jobs) spinning threads fight the busy ones:
    measured here, a training step was about 7x faster under load on a 2-core AMD EPYC (docs/performance.md),
    with the same results. The OpenMP runtime reads the variable once, when `import torch` loads it, so
    this has to run before torch is imported: `pix2pix.cli` imports no torch at module level for that
    reason (and for a fast `--help`). DataLoader workers inherit it; under torchrun each rank runs
    `main` and sets it for itself.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
