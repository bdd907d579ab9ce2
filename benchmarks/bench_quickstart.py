"""The quick start's training step (the `demo` recipe's networks at 128 px) in ms per image, by batch
size and OpenMP wait policy, on an idle machine and with one core kept busy by another process.

    python benchmarks/bench_quickstart.py [--batches 1 4] [--iters 30] [--isa avx2]

Each cell runs in a fresh process: OpenMP reads OMP_WAIT_POLICY once, when torch is imported.
`--isa avx2` caps oneDNN at AVX2 (ONEDNN_MAX_CPU_ISA), which shows how the convolutions run on CPUs
without AVX-512 (the clock and caches stay this machine's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from importlib import resources

POLICIES = {"PASSIVE": "PASSIVE (the pix2pix command)", None: "unset (OpenMP's default)"}


def measure(batch_sizes: list[int], iters: int) -> dict[int, float]:
    """ms per image of the demo recipe's training step at each batch size (random images: the step's
    cost does not depend on their content)."""
    import torch

    from pix2pix.config import RunConfig
    from pix2pix.training.acceleration import plan_acceleration
    from pix2pix.training.distributed import start_process
    from pix2pix.training.state import build_training_state
    from pix2pix.training.step import objective_of, train_step

    config = RunConfig.load(resources.files("pix2pix.recipes") / "demo.toml")
    process = start_process("cpu")
    results = {}
    for batch_size in batch_sizes:
        run = build_training_state(config, process.device, plan_acceleration(config, process))
        size = config.data.crop_size
        source, target = torch.rand(2, batch_size, 3, size, size) * 2 - 1
        networks_and_batch = (run.generator, run.discriminator, run.opt_g, run.opt_d, source, target)
        loss = {"objective": objective_of(config), "precision": run.precision}
        for _ in range(5):  # warm-up: oneDNN picks and caches its kernels
            train_step(*networks_and_batch, **loss)
        started = time.perf_counter()
        for _ in range(iters):
            train_step(*networks_and_batch, **loss)
        results[batch_size] = (time.perf_counter() - started) / iters / batch_size * 1000
    return results


def run_cell(policy: str | None, busy: bool, args: argparse.Namespace) -> dict[str, float]:
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    if args.isa:
        env["ONEDNN_MAX_CPU_ISA"] = args.isa.upper()
    command = [sys.executable, __file__, "--worker", "--iters", str(args.iters), "--batches", *map(str, args.batches)]
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    finally:
        if burner is not None:
            burner.kill()
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--isa", help="cap oneDNN's instruction set, e.g. avx2")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.batches, args.iters)))
        return

    import torch

    isa = f", oneDNN capped at {args.isa.upper()}" if args.isa else ""
    print(f"demo recipe training step, ms per image; torch {torch.__version__}, {os.cpu_count()} cores{isa}")
    print("| load | OMP_WAIT_POLICY | " + " | ".join(f"batch {b}" for b in args.batches) + " |")
    print("|---|---|" + "---|" * len(args.batches))
    for busy in (False, True):
        for policy, label in POLICIES.items():
            cells = run_cell(policy, busy, args)
            row = " | ".join(f"{cells[str(b)]:.1f}" for b in args.batches)
            print(f"| {'one core busy' if busy else 'idle'} | {label} | {row} |", flush=True)


if __name__ == "__main__":
    main()
