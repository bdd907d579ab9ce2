"""Time to evaluate N images (default 100) at 256x256: metrics only, and with the translation.

    python benchmarks/bench_eval.py [--images 100] [--size 256] [--device cpu]

"metrics only" measures an existing results folder (`pix2pix eval --results`): decoding, L1/PSNR/SSIM,
error heat maps, metrics.json/csv and the HTML report. "with translation" is `pix2pix eval --checkpoint`
with the paper's generator (U-Net 256, ngf 64, untrained weights: the timing does not depend on them),
dropout on and batch statistics. The FCN-score is left out: its segmenter is trained once per dataset
and cached, and scoring with it is small next to the translation. Images are built-in synthetic facades.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from pix2pix.checkpoint import save_checkpoint
from pix2pix.config import DataConfig, RunConfig
from pix2pix.data.synthetic import generate_synthetic_facades
from pix2pix.evaluate.pipeline import FcnOptions, evaluate_checkpoint, evaluate_images, list_result_images
from pix2pix.networks import build_generator_for


def write_checkpoint(path: Path, size: int) -> Path:
    config = RunConfig(data=DataConfig(crop_size=size, load_size=size))
    torch.manual_seed(0)
    save_checkpoint(path, {"config": config.to_dict(), "generator": build_generator_for(config).state_dict()})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = generate_synthetic_facades(
            Path(tmp) / "data", size=args.size, counts={"train": 0, "val": 0, "test": args.images}
        )
        checkpoint = write_checkpoint(Path(tmp) / "model.pt", args.size)
        off = FcnOptions("off")

        started = time.perf_counter()
        evaluation = evaluate_checkpoint(
            checkpoint, Path(tmp) / "eval", data=str(root), device=args.device, fcn=off, progress=False
        )
        with_translation = time.perf_counter() - started

        items = list_result_images(Path(tmp) / "eval" / "images")
        started = time.perf_counter()
        evaluate_images(items, Path(tmp) / "again", label="again", split="test", fcn=off, progress=False)
        metrics_only = time.perf_counter() - started

    n = len(evaluation.rows)
    print(f"evaluating {n} images at {args.size}x{args.size} on {args.device} ({torch.get_num_threads()} threads)")
    print(f"{'stage':<18} {'seconds':>8} {'images/s':>9} {'ms/image':>9}")
    for stage, seconds in (("metrics only", metrics_only), ("with translation", with_translation)):
        print(f"{stage:<18} {seconds:>8.1f} {n / seconds:>9.1f} {1000 * seconds / n:>9.0f}")


if __name__ == "__main__":
    main()
