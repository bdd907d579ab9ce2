"""Ours vs a straightforward eager implementation of the official algorithm, measured side by side.

    python benchmarks/bench.py [--device cuda] [--size 256] [--iters 6] [--warmup 2] [--profile]
    python benchmarks/bench.py --distributed [--size 256] [--batch-size 1] [--iters 6] [--warmup 2]
    python benchmarks/bench.py --batches 1 16 64 [--device cuda] [--compile]
    python benchmarks/bench.py --upgrades [--recipe facades_cpu] [--device cuda]

Baseline: the official U-Net's module layout (benchmarks/official_networks.py: the recursion of skip
blocks, torch.cat, in-place activations, torch's `nn.ConvTranspose2d`) with the same weights as ours, the
official update order (G forward; D step on the detached fake; G step with D frozen) written out below
with plain `torch.optim.Adam`, and eager inference (`model.eval()` for the deterministic mode; train-mode
batch norm with dropout for the paper's protocol).
Ours: `train_step` with `build_optimizer` (fused Adam) on our networks, whose `UpConvTranspose2d` runs
the deepest levels as a matmul + fold on a CPU; inference through the public API,
`Pix2Pix.translate_tensor`: `runtime="auto"` (onnxruntime when installed, on a CPU) and `runtime="torch"`
(batch norm folded into the convs under `torch.inference_mode`) for the deterministic mode, and the
paper's protocol (batch statistics, dropout on) with `runtime="auto"` (onnxruntime too, one image at a
time, with torch's dropout masks).

Training at `--size` (U-Net depth from the size: 256 -> 8) and at half of it (depth 7), batch 1, with
also ours under bf16 autocast (`--precision bf16`) where the device computes bf16 natively;
inference at `--size`, batch 1. Each row alternates its variants iteration by
iteration and reports medians, so load from other processes hits both alike; ratios are ours/baseline.
Also: data-loading throughput of `PairedDataset`, FLOPs of one training iteration and of one translation
(`torch.utils.flop_counter`), achieved GFLOP/s and its fraction of the machine's ceiling, the higher of
torch's 2048^3 fp32 matmul and k4 s2 convolution measured in the same run (onnxruntime's own kernels can
pass it).
`--profile` then prints the top operators of one of our training iterations and, on a CPU, the floor:
our iteration's milliseconds in its convolution kernels and Adam step, and so what ours/baseline would be
were everything else in ours free.

`--distributed` instead measures training images/s of 1 and 2 CPU processes under DDP (gloo), the
CPU cores split evenly between the processes, and their ratio.

`--upgrades` instead measures, interleaved, one training iteration of a CPU recipe (configs/) with each
opt-in upgrade of the upgrades study alone against the paper's, as `pix2pix train` runs it (the D/G step
and, with --ema-decay, the average's update).

`--batches B ...` instead measures our training step's images/s at each batch size, in fp32 and (where
the device computes bf16 natively: CUDA, or a CPU with AVX512-BF16/AMX) bf16 autocast, in the memory
format training uses on the device (channels_last on CUDA), with `--compile` optionally, and each as a
fraction of the device's measured matmul ceiling in that dtype.

On a machine shared with other processes, compare with `OMP_WAIT_POLICY=PASSIVE` set (docs/performance.md,
"OpenMP wait policy"): with the default policy torch's threads spin while waiting for a busy core.
"""

from __future__ import annotations

import argparse
import copy
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from official_networks import official_unet_like  # beside this script
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pix2pix.cli import build_parser
from pix2pix.config import DataConfig, RunConfig
from pix2pix.data import PairedDataset
from pix2pix.data.builtin import resolve_data_root
from pix2pix.devices import resolve_channels_last, resolve_device, resolve_precision
from pix2pix.flags import build_config
from pix2pix.inference import Pix2Pix
from pix2pix.losses import Objective
from pix2pix.networks import build_discriminator_for, build_generator_for
from pix2pix.nn.blocks import with_plain_transposes
from pix2pix.training.acceleration import MixedPrecision, plan_acceleration
from pix2pix.training.distributed import Process, end_process, start_process, wrap_for_training
from pix2pix.training.loop import StepNetworks, train_iteration
from pix2pix.training.optim import build_optimizer
from pix2pix.training.state import build_training_state
from pix2pix.training.step import FP32, objective_of, train_step

REPO = Path(__file__).resolve().parents[1]
REAL_FACADES = REPO.parent / "shared" / "data" / "facades"
LR, BETAS, L1_WEIGHT = 2e-4, (0.5, 0.999), 100.0


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_interleaved(variants: dict[str, Callable[[], object]], device: torch.device, iters: int, warmup: int):
    """Median seconds per call of each variant, the variants alternating call by call."""
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(iters):
        for name, fn in variants.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    wait_policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    return f"CPU ({torch.get_num_threads()} threads, OMP_WAIT_POLICY {wait_policy}, torch {torch.__version__})"


def build_networks(size: int, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """The paper's networks (U-Net with depth from `size`, ngf 64, batch norm; 70x70 PatchGAN), seed 0."""
    config = RunConfig(data=DataConfig(crop_size=size, load_size=size))
    torch.manual_seed(0)
    return build_generator_for(config).to(device), build_discriminator_for(config).to(device)


def make_official_iteration(generator: nn.Module, discriminator: nn.Module, source, target) -> Callable[[], None]:
    """One iteration as the official `Pix2PixModel.optimize_parameters`, with plain Adam."""
    opt_g = torch.optim.Adam(generator.parameters(), lr=LR, betas=BETAS)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=LR, betas=BETAS)
    bce, l1 = nn.BCEWithLogitsLoss(), nn.L1Loss()

    def iteration() -> None:
        fake = generator(source)
        discriminator.requires_grad_(True)
        opt_d.zero_grad()
        pred_fake = discriminator(torch.cat([source, fake.detach()], 1))
        pred_real = discriminator(torch.cat([source, target], 1))
        loss_d = 0.5 * (bce(pred_fake, torch.zeros_like(pred_fake)) + bce(pred_real, torch.ones_like(pred_real)))
        loss_d.backward()
        opt_d.step()
        discriminator.requires_grad_(False)
        opt_g.zero_grad()
        pred_fake = discriminator(torch.cat([source, fake], 1))
        loss_g = bce(pred_fake, torch.ones_like(pred_fake)) + L1_WEIGHT * l1(fake, target)
        loss_g.backward()
        opt_g.step()

    return iteration


def make_our_iteration(
    generator: nn.Module, discriminator: nn.Module, source, target, precision: MixedPrecision = FP32
) -> Callable[[], None]:
    opt_g = build_optimizer(generator.parameters(), lr=LR, betas=BETAS)
    opt_d = build_optimizer(discriminator.parameters(), lr=LR, betas=BETAS)
    step_options = {"objective": Objective(l1_weight=L1_WEIGHT), "precision": precision}
    return lambda: train_step(generator, discriminator, opt_g, opt_d, source, target, **step_options)


def has_native_bf16(device: torch.device) -> bool:
    """Whether `pix2pix train --precision bf16` runs on `device` (its hardware computes bf16 natively)."""
    try:
        return resolve_precision("bf16", device) == torch.bfloat16
    except ValueError:
        return False


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def bench_training(size: int, device: torch.device, args) -> dict[str, float]:
    generator, discriminator = build_networks(size, device)
    plain_generator = with_plain_transposes(copy.deepcopy(generator))
    source = torch.randn(1, 3, size, size, device=device)
    target = torch.randn(1, 3, size, size, device=device)
    variants = {
        "baseline": make_official_iteration(
            official_unet_like(generator), copy.deepcopy(discriminator), source, target
        ),
        "ours": make_our_iteration(copy.deepcopy(generator), copy.deepcopy(discriminator), source, target),
        # what fused Adam alone gives: ours with torch's transposed convolutions everywhere
        "ours, plain transposes": make_our_iteration(
            copy.deepcopy(plain_generator), copy.deepcopy(discriminator), source, target
        ),
    }
    if has_native_bf16(device):  # the opt-in --precision bf16 (the default on CUDA)
        variants["ours, bf16"] = make_our_iteration(
            copy.deepcopy(generator), copy.deepcopy(discriminator), source, target, MixedPrecision(torch.bfloat16)
        )
    seconds = time_interleaved(variants, device, args.iters, args.warmup)
    seconds["flops"] = count_flops(variants["ours"])
    return seconds


def bench_inference(size: int, device: torch.device, args) -> tuple[dict[str, float], dict[str, float], str]:
    """Seconds per image of each variant, each variant's max difference from its baseline's output, and the
    engine `runtime="auto"` chose."""
    generator, _ = build_networks(size, device)
    # a few training-mode forwards give the running statistics non-trivial values to fold
    with torch.no_grad():
        for _ in range(3):
            generator(torch.randn(1, 3, size, size, device=device))
    # two copies: train-mode batch norm updates the running statistics that eval mode uses
    official, official_paper = official_unet_like(generator), official_unet_like(generator)
    config = RunConfig(data=DataConfig(crop_size=size, load_size=size))
    auto, eager = (Pix2Pix(generator, config, device, runtime=runtime) for runtime in ("auto", "torch"))
    source = torch.rand(1, 3, size, size, device=device) * 2 - 1
    deterministic = {"dropout": False, "norm_stats": "running"}

    def run_official_eval() -> torch.Tensor:
        with torch.no_grad():
            return official.eval()(source)

    def run_official_paper() -> torch.Tensor:
        torch.manual_seed(0)  # the draw ours makes with seed=0
        with torch.no_grad():
            return official_paper.train()(source)  # batch statistics (of the image itself), dropout on

    variants: dict[str, Callable[[], torch.Tensor]] = {
        "baseline": run_official_eval,
        "paper baseline": run_official_paper,
        "ours, auto": lambda: auto.translate_tensor(source, **deterministic),
        "ours, torch": lambda: eager.translate_tensor(source, **deterministic),
        "ours, paper protocol": lambda: auto.translate_tensor(source, dropout=True, norm_stats="batch", seed=0),
    }
    variants["ours, auto"]()  # the one-time ONNX export (cached) is not part of the per-image time
    seconds = time_interleaved(variants, device, args.iters, args.warmup)
    reference, paper_reference = run_official_eval(), run_official_paper()
    errors = {name: (variants[name]() - reference).abs().max().item() for name in ("ours, auto", "ours, torch")}
    errors["ours, paper protocol"] = (variants["ours, paper protocol"]() - paper_reference).abs().max().item()
    seconds["flops"] = count_flops(run_official_eval)  # one generator forward, whichever engine runs it
    return seconds, errors, auto.runtime_for(**deterministic)


def bench_data(size: int, count: int) -> tuple[str, float]:
    """Seconds per training pair (decode, split, resize to size * 286/256, crop, flip) in one process."""
    root = REAL_FACADES if (REAL_FACADES / "train").is_dir() else resolve_data_root("builtin")
    dataset = PairedDataset(root, "train", load_size=size * 286 // 256, crop_size=size)
    count = min(count, len(dataset))
    start = time.perf_counter()
    for index in range(count):
        dataset[index]
    return str(root), (time.perf_counter() - start) / count


def measure_ceiling(device: torch.device, args) -> dict[str, float]:
    """GFLOP/s of a 2048^3 fp32 matmul and of a k4 s2 convolution (128 -> 256 channels, 128x128 input)."""
    a, b = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)
    conv = nn.Conv2d(128, 256, 4, stride=2, padding=1, bias=False).to(device)
    x = torch.randn(1, 128, 128, 128, device=device)
    variants = {"matmul 2048^3": lambda: a @ b, "conv k4 s2": lambda: conv(x)}
    with torch.no_grad():
        flops = {name: count_flops(fn) for name, fn in variants.items()}
        seconds = time_interleaved(variants, device, max(args.iters, 5), 1)
    return {name: flops[name] / seconds[name] / 1e9 for name in variants}


def print_profile(size: int, device: torch.device, measured: dict[str, float]) -> None:
    """Top operators (self time) of one of our training iterations, then the same by input shape (which
    layer of which network); on a CPU, then how far a change outside the convolution kernels could go, from
    `measured` (bench_training's seconds at `size`)."""
    from torch.profiler import ProfilerActivity, profile

    generator, discriminator = build_networks(size, device)
    source = torch.randn(1, 3, size, size, device=device)
    iteration = make_our_iteration(generator, discriminator, source, source.clone())
    iteration()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as profiler:
        iteration()
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(profiler.key_averages().table(sort_by=sort, row_limit=12))
    print(profiler.key_averages(group_by_input_shape=True).table(sort_by=sort, row_limit=12))
    if device.type == "cpu":
        print_floor(size, measured)


# The aten operators whose self time on a CPU is the arithmetic of our training iteration, by kind:
# oneDNN's forward and backward convolutions, the transposed forward (which `_convolution` runs inline),
# the matmul form of the deepest transposes (`mm` with `im2col`/`col2im`), and fused Adam, which reads
# and writes every weight and both moments (bound by memory).
FLOOR_OPERATORS = {
    "convolution kernels": frozenset(
        {
            "aten::mkldnn_convolution",
            "aten::convolution_backward",
            "aten::_convolution",
            "aten::mm",
            "aten::im2col",
            "aten::col2im",
        }
    ),
    "fused Adam": frozenset({"aten::_fused_adam_"}),
}


def profile_operators(size: int, rounds: int = 3) -> dict[str, float]:
    """Milliseconds of self CPU time per iteration of each aten operator in our training iteration, under
    the profiler, mean of `rounds` iterations."""
    from torch.profiler import ProfilerActivity, profile

    generator, discriminator = build_networks(size, torch.device("cpu"))
    source, target = torch.randn(1, 3, size, size), torch.randn(1, 3, size, size)
    iteration = make_our_iteration(generator, discriminator, source, target)
    iteration()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(rounds):
            iteration()
    return {event.key: event.self_cpu_time_total / rounds / 1000 for event in profiler.key_averages()}


def print_floor(size: int, measured: dict[str, float]) -> None:
    """What ours/baseline would be were everything in ours but its convolution kernels and Adam step free
    (Python, autograd, batch norm, activations, copies): how far work around those kernels can go.
    `measured`: bench_training's seconds at `size`, timed without the profiler, which slows small operators
    most and so leaves the kernels' own milliseconds nearly as they are."""
    milliseconds = profile_operators(size)
    floor = {kind: sum(milliseconds.get(name, 0.0) for name in names) for kind, names in FLOOR_OPERATORS.items()}
    ours, baseline = measured["ours"] * 1000, measured["baseline"] * 1000
    named = ", ".join(f"{kind} {time:.0f} ms ({time / ours:.0%})" for kind, time in floor.items())
    print(
        f"{size}px: ours {ours:.0f} ms an iteration, of which {named} (under the profiler); the baseline "
        f"{baseline:.0f} ms. Were everything else in ours free, ours/baseline would be "
        f"{baseline / sum(floor.values()):.2f}x (measured: {baseline / ours:.2f}x)."
    )


def bench_batches(device: torch.device, args) -> None:
    """Images/s of our training step per batch size and precision, against the matmul ceiling."""
    dtypes = {"fp32": torch.float32, **({"bf16": torch.bfloat16} if has_native_bf16(device) else {})}
    memory_format = torch.channels_last if resolve_channels_last("auto", device) else torch.contiguous_format
    print(f"device: {device_name(device)}; {args.size}px, {memory_format}, compile {args.compile}", flush=True)
    print(f"{'precision':<10}{'batch':>6}{'img/s':>10}{'GFLOP/s':>10}{'of ceiling':>12}")
    for name, dtype in dtypes.items():
        ceiling = measure_matmul_ceiling(device, dtype)
        for batch in args.batches:
            iteration = make_batched_iteration(args.size, batch, device, dtype, memory_format, compile=args.compile)
            seconds = time_interleaved({"ours": iteration}, device, args.iters, args.warmup)["ours"]
            gflops = count_flops(iteration) / seconds / 1e9
            print(f"{name:<10}{batch:>6}{batch / seconds:>10.2f}{gflops:>10.1f}{gflops / ceiling:>12.0%}")
        print(f"{name} matmul ceiling: {ceiling:.1f} GFLOP/s", flush=True)


def measure_matmul_ceiling(device: torch.device, dtype: torch.dtype) -> float:
    """GFLOP/s of a large square matmul in `dtype` (4096 on a GPU, 2048 on a CPU)."""
    n = 4096 if device.type == "cuda" else 2048
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    seconds = time_interleaved({"matmul": lambda: a @ b}, device, 5, 1)["matmul"]
    return 2 * n**3 / seconds / 1e9


def make_batched_iteration(
    size: int, batch: int, device: torch.device, dtype: torch.dtype, memory_format, *, compile: bool
) -> Callable[[], None]:
    """Our training step on the paper's networks at `batch`, as `pix2pix train` runs it on `device`."""
    generator, discriminator = (net.to(memory_format=memory_format) for net in build_networks(size, device))
    if compile:
        generator, discriminator = torch.compile(generator), torch.compile(discriminator)
    source, target = (
        torch.randn(batch, 3, size, size, device=device).to(memory_format=memory_format) for _ in range(2)
    )
    return make_our_iteration(generator, discriminator, source, target, MixedPrecision(dtype))


def bench_upgrades(device: torch.device, args) -> None:
    """ms per training iteration of the upgrades study's recipe with each upgrade alone (the flags of
    experiments/studies.py's UPGRADE_ROWS), interleaved with the paper's step, and the ratio to it."""
    sys.path.insert(0, str(REPO / "experiments"))
    from studies import UPGRADE_ROWS  # a script folder, not a package

    recipe = REPO / "configs" / f"{args.recipe}.toml"
    iterations = {row.label: make_recipe_iteration(recipe, row.flags, device) for row in UPGRADE_ROWS}
    seconds = time_interleaved(iterations, device, args.iters, args.warmup)
    paper = seconds[UPGRADE_ROWS[0].label]
    print(f"device: {device_name(device)}; recipe {recipe.relative_to(REPO)}, batch 1, median of {args.iters}")
    print(f"{'upgrade':<26}{'ms/it':>8}{'x paper':>9}")
    for label, value in seconds.items():
        print(f"{label:<26}{1000 * value:>8.0f}{value / paper:>9.2f}")


def make_recipe_iteration(recipe: Path, flags: tuple[str, ...], device: torch.device) -> Callable[[], object]:
    """One training iteration (loop.train_iteration: the D/G step and the EMA update) of `pix2pix train
    --config RECIPE FLAGS`, on a random batch of the recipe's crop size."""
    config = build_config(build_parser().parse_args(["train", "--config", str(recipe), *flags]))
    process = Process(0, 1, device)
    acceleration = plan_acceleration(config, process)
    torch.manual_seed(0)
    run = build_training_state(config, device, acceleration)
    steps = StepNetworks(run.generator, run.discriminator, acceleration.memory_format)
    size, channels = config.data.crop_size, (config.model.in_channels, config.model.out_channels)
    source, target = (torch.randn(1, c, size, size, device=device) for c in channels)
    objective = objective_of(config)
    return lambda: train_iteration(run, steps, source, target, objective, config.optim.ema_decay)


def bench_distributed(args) -> None:
    """Training images/s of 1 and 2 CPU processes (DDP over gloo), each with its share of the cores.

    Weak scaling: every process trains on `--batch-size` images, so 2 processes see twice the images per
    iteration and also pay an all-reduce of G's and D's gradients each step.
    """
    cores = os.cpu_count() or 1
    print(f"distributed: {args.size}px, batch {args.batch_size} per process, gloo on {cores} CPU cores", flush=True)
    rates = {}
    for processes in (1, 2):
        threads = max(1, cores // processes)
        seconds = run_training_processes(processes, threads, args)
        rates[processes] = processes * args.batch_size / seconds
        print(f"{processes} process(es) x {threads} thread(s): {rates[processes]:.3f} img/s", flush=True)
    print(f"2 processes / 1 process: {rates[2] / rates[1]:.2f}x")


def run_training_processes(processes: int, threads: int, args) -> float:
    """Seconds per iteration, as rank 0 measures it (DDP keeps the ranks in lockstep)."""
    context = torch.multiprocessing.get_context("spawn")
    results = context.SimpleQueue()
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = (processes, port, threads, args.size, args.batch_size, args.iters, args.warmup, results)
    torch.multiprocessing.spawn(train_in_process, args=settings, nprocs=processes)
    return results.get()


def train_in_process(
    rank: int, processes: int, port: int, threads: int, size: int, batch_size: int, iters: int, warmup: int, results
) -> None:
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(processes)}
    os.environ.update(env, RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(threads)
    process = start_process("cpu")
    try:
        generator, discriminator = build_networks(size, process.device)
        opt_g = build_optimizer(generator.parameters(), lr=LR, betas=BETAS)
        opt_d = build_optimizer(discriminator.parameters(), lr=LR, betas=BETAS)
        step_generator, step_discriminator = (wrap_for_training(net, process) for net in (generator, discriminator))
        source, target = torch.randn(2, batch_size, 3, size, size)
        for index in range(warmup + iters):
            if index == warmup:
                start = time.perf_counter()
            train_step(
                step_generator,
                step_discriminator,
                opt_g,
                opt_d,
                source,
                target,
                objective=Objective(l1_weight=L1_WEIGHT),
            )
        if process.is_main:
            results.put((time.perf_counter() - start) / iters)
    finally:
        end_process(process)


def format_row(name: str, baseline: str, ours: str, ratio: str) -> str:
    return f"{name:<58}{baseline:>14}{ours:>14}{ratio:>10}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iters", type=int, default=6, help="timed iterations per variant (medians)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations per variant first")
    parser.add_argument("--data-pairs", type=int, default=40, help="pairs decoded for the data-loading rate")
    parser.add_argument("--profile", action="store_true", help="also print the top operators of one iteration")
    parser.add_argument("--distributed", action="store_true", help="only: training img/s of 1 vs 2 CPU processes")
    parser.add_argument("--batch-size", type=int, default=1, help="per process, for --distributed")
    parser.add_argument("--batches", type=int, nargs="+", help="only: training img/s at these batch sizes")
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks, for --batches")
    parser.add_argument("--upgrades", action="store_true", help="only: the cost of each opt-in upgrade alone")
    parser.add_argument("--recipe", default="facades_cpu", help="configs/RECIPE.toml, for --upgrades")
    args = parser.parse_args()
    if args.distributed:
        bench_distributed(args)
        return
    device = resolve_device(args.device)
    if args.batches:
        bench_batches(device, args)
        return
    if args.upgrades:
        bench_upgrades(device, args)
        return

    small = args.size // 2
    print(f"device: {device_name(device)}", flush=True)
    ceiling = measure_ceiling(device, args)
    large = bench_training(args.size, device, args)
    half = bench_training(small, device, args)
    inference, errors, runtime = bench_inference(args.size, device, args)
    data_root, data_seconds = bench_data(args.size, args.data_pairs)
    peak = max(ceiling.values())

    rows = [format_row("measure", "baseline", "ours", "ours/base")]

    def add_rate(name: str, seconds: dict[str, float], ours: str, unit: str, baseline: str = "baseline") -> None:
        base, fast = 1 / seconds[baseline], 1 / seconds[ours]
        rows.append(format_row(name, f"{base:.3f} {unit}", f"{fast:.3f} {unit}", f"{fast / base:.2f}x"))

    def add_gflops(seconds: dict[str, float], ours: str, unit: str) -> None:
        gflops = {name: seconds["flops"] / seconds[key] / 1e9 for name, key in (("baseline",) * 2, ("ours", ours))}
        rows.append(format_row(f"  GFLOP/s ({seconds['flops'] / 1e9:.1f} GFLOP/{unit})", *gflops_cells(gflops)))
        rows.append(format_row("  fraction of ceiling", *fraction_cells(gflops, peak)))

    for size, result in ((args.size, large), (small, half)):
        add_rate(f"train {size}px b1 (it/s)", result, "ours", "")
        add_gflops(result, "ours", "it")
        add_rate("  fused Adam only (plain transposes)", result, "ours, plain transposes", "")
        if "ours, bf16" in result:
            add_rate("  ours with --precision bf16", result, "ours, bf16", "")
    translate = f"translate {args.size}px b1"
    add_rate(f"{translate} deterministic, auto = {runtime} (img/s)", inference, "ours, auto", "")
    add_gflops(inference, "ours, auto", "image")
    add_rate(f"{translate} deterministic, torch (img/s)", inference, "ours, torch", "")
    add_rate(f"{translate} paper protocol (img/s)", inference, "ours, paper protocol", "", "paper baseline")
    rows.append(format_row(f"data: {args.size}px pairs/s, 1 process", "", f"{1 / data_seconds:.1f}", ""))
    fraction = data_seconds / large["ours"]
    rows.append(
        format_row("  data wait per iteration, 0 workers", "", f"{data_seconds * 1000:.1f} ms", f"{fraction:.1%}")
    )
    for name, value in ceiling.items():
        rows.append(format_row(f"ceiling: {name} (GFLOP/s)", "", f"{value:.1f}", ""))
    print("\n".join(rows))
    differences = ", ".join(f"{name} {error:.1e}" for name, error in errors.items())
    print(f"max |output - eager output|: {differences}; data: {data_root}")
    if args.profile:
        print_profile(args.size, device, large)


def gflops_cells(gflops: dict[str, float]) -> tuple[str, str, str]:
    return f"{gflops['baseline']:.1f}", f"{gflops['ours']:.1f}", f"{gflops['ours'] / gflops['baseline']:.2f}x"


def fraction_cells(gflops: dict[str, float], peak: float) -> tuple[str, str, str]:
    return f"{gflops['baseline'] / peak:.0%}", f"{gflops['ours'] / peak:.0%}", ""


if __name__ == "__main__":
    main()
