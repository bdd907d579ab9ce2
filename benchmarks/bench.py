"""Training iterations/s and translated images/s at 256x256, batch 1, on the current device.

    python benchmarks/bench.py [--device cuda] [--iters 10] [--size 256]

The networks are the paper's defaults (U-Net 256, ngf 64, batch norm, 70x70 PatchGAN). Median of
`--iters` timed iterations after `--warmup` untimed ones; the machine is often shared, so medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pix2pix.checkpoint import build_discriminator_for, build_generator_for
from pix2pix.config import DataConfig, RunConfig
from pix2pix.devices import resolve_device
from pix2pix.nn.modes import set_inference_mode
from pix2pix.training.step import train_step


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_calls(fn, device: torch.device, iters: int, warmup: int) -> float:
    """Median seconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads, torch {torch.__version__})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    device = resolve_device(args.device)
    config = RunConfig(data=DataConfig(crop_size=args.size, load_size=args.size))
    torch.manual_seed(0)
    generator = build_generator_for(config).to(device)
    discriminator = build_discriminator_for(config).to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    source = torch.randn(1, 3, args.size, args.size, device=device)
    target = torch.randn(1, 3, args.size, args.size, device=device)

    def train_iteration() -> None:
        train_step(generator, discriminator, opt_g, opt_d, source, target, gan_mode="vanilla", l1_weight=100.0)

    train_seconds = time_calls(train_iteration, device, args.iters, args.warmup)

    set_inference_mode(generator, dropout=False, norm_stats="running")

    @torch.no_grad()
    def translate() -> None:
        generator(source)

    infer_seconds = time_calls(translate, device, args.iters, args.warmup)

    print(f"device: {device_name(device)}")
    print(f"{'measure':<32}{'median':>12}{'per second':>14}")
    print(f"{f'train iteration {args.size}px b1':<32}{train_seconds * 1000:>10.0f}ms{1 / train_seconds:>11.2f} it/s")
    print(f"{f'translate {args.size}px b1 (eval)':<32}{infer_seconds * 1000:>10.0f}ms{1 / infer_seconds:>10.2f} img/s")


if __name__ == "__main__":
    main()
