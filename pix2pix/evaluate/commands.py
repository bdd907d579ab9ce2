"""`pix2pix eval` and `pix2pix summary`: flags in, one library call out.

Heavy imports (torch, scikit-image, matplotlib) happen inside the run functions so `pix2pix --help`
stays fast.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pix2pix.extras import require_packages
from pix2pix.flags import (
    add_config_flags,
    add_config_option,
    add_reverse_flag,
    add_runtime_flag,
    add_test_time_flags,
    build_config,
    dropout_flag,
)

if TYPE_CHECKING:
    from pix2pix.evaluate.fcn_score import Palette
    from pix2pix.evaluate.pipeline import FcnOptions

FCN_MODES = ("auto", "on", "off")  # as pipeline.FCN_MODES, not imported from there: it loads torch


def add_eval_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("eval", help="measure a model: L1, PSNR, SSIM, FCN-score, LPIPS, FID, HTML report")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--checkpoint",
        nargs="+",
        type=Path,
        help="run folder(s) or checkpoint file(s); several runs are also compared side by side",
    )
    source.add_argument(
        "--results",
        nargs="+",
        type=Path,
        help="instead of translating: `pix2pix test` output folder(s) with NAME.png + targets/NAME.png",
    )
    parser.add_argument(
        "--data",
        help="dataset root or 'builtin' (default: the run's training data); with "
        "--results, the FCN-score's segmenter learns from its training split",
    )
    parser.add_argument("--split", default="test", help="split to translate (default: test)")
    parser.add_argument(
        "--direction",
        choices=("AtoB", "BtoA"),
        help="which half of --data's pairs is the input (default: the model's own direction); e.g. a CycleGAN "
        "run measured on paired data laid out the other way round",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="report folder (default: RUN/eval-SPLIT, RUN/eval-SPLIT-reverse with --reverse, or RESULTS/eval; "
        "with several runs: the comparison folder, default PARENT/compare-SPLIT)",
    )
    parser.add_argument(
        "--fcn-score",
        choices=FCN_MODES,
        default="auto",
        help="auto: when one side of the pairs is a label map in the palette",
    )
    parser.add_argument(
        "--palette",
        default="facades",
        help="label colours: 'facades' (CMP, 12 classes), a JSON file {\"name\": [r, g, b], ...}, or 'detect': "
        "found in the label maps of the training split of --data (default: the first run's data)",
    )
    parser.add_argument("--fcn-size", type=int, default=64, help="segmenter resolution in pixels (default: 64)")
    parser.add_argument("--fcn-iterations", type=int, default=1500, help="segmenter training steps (default: 1500)")
    parser.add_argument("--fcn-seed", type=int, default=0, help="seed of the segmenter's training")
    parser.add_argument(
        "--fcn-segmenter",
        type=Path,
        help="a segmenter an earlier evaluation saved (CACHE/segmenters/*.pt), used instead of training one: "
        "scores comparable across machines and days (--fcn-size/--fcn-iterations/--fcn-seed are then its own)",
    )
    parser.add_argument(
        "--fid-weights",
        type=Path,
        metavar="FILE",
        help="TorchScript feature network for the FID, e.g. NVIDIA's inception-2015-12-05.pt (see docs/evaluation.md)",
    )
    parser.add_argument(
        "--lpips-weights",
        type=Path,
        metavar="FILE",
        help="TorchScript LPIPS network: (output, target) in [-1,1] -> one distance per image (see docs/evaluation.md)",
    )
    add_test_time_flags(parser)  # as `pix2pix test`: the model's own mode by default
    add_runtime_flag(parser)
    add_reverse_flag(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the dropout draws")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run_eval)


def add_summary_command(commands: argparse._SubParsersAction) -> None:
    # the training flags, so `--config demo --base-channels 32` summarises exactly what `train` would build
    parser = commands.add_parser("summary", help="layers, output shapes and parameter counts of G and D")
    source = parser.add_mutually_exclusive_group()
    add_config_option(source)
    source.add_argument("--checkpoint", help="run folder, checkpoint file, or official latest_net_G.pth")
    parser.add_argument(
        "--layers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="print the layer tables (--no-layers: totals and receptive field only)",
    )
    add_config_flags(parser)
    parser.set_defaults(run=run_summary)


def label_runs(paths: list[Path]) -> list[str]:
    """Short distinct names: the run folder's name, or RUN/FILE for a checkpoint file."""
    labels: list[str] = []
    for path in paths:
        label = (
            path.name
            if path.is_dir() or path.parent.name != "checkpoints"
            else f"{path.parent.parent.name}/{path.stem}"
        )
        labels.append(label if label not in labels else f"{label} #{len(labels) + 1}")
    return labels


def default_eval_folder(checkpoint: Path, split: str, *, reverse: bool = False) -> Path:
    """RUN/eval-SPLIT for a run folder or its latest.pt; RUN/eval-SPLIT-STEM for another checkpoint file;
    eval-SPLIT-NAME here for `pretrained:NAME`; each with -reverse for a CycleGAN's B -> A generator, so
    that its report never replaces the A -> B one."""
    from pix2pix.checkpoint import LATEST, run_folder_of
    from pix2pix.inference.pretrained import is_pretrained_name, pretrained_entry

    suffix = "-reverse" if reverse else ""
    if is_pretrained_name(checkpoint):
        return Path(f"eval-{split}-{pretrained_entry(str(checkpoint)).name}{suffix}")
    latest = checkpoint.is_dir() or checkpoint.name == LATEST
    name = f"eval-{split}" if latest else f"eval-{split}-{checkpoint.stem}"
    return run_folder_of(checkpoint) / f"{name}{suffix}"


def run_eval(args: argparse.Namespace) -> None:
    from pix2pix.data.builtin import resolve_data_root
    from pix2pix.evaluate.compare import write_comparison
    from pix2pix.evaluate.perceptual import load_perceptual_models
    from pix2pix.evaluate.pipeline import evaluate_checkpoint, evaluate_images, list_result_images

    # refused here, not after the translations
    require_packages([(module, "eval", "pix2pix eval") for module in ("skimage", "scipy", "matplotlib")])
    fcn = fcn_options(args)
    # loaded and probed first, so a wrong file fails before any translation
    perceptual = load_perceptual_models(args.fid_weights, args.lpips_weights, args.device)
    sources = args.checkpoint or args.results
    several = len(sources) > 1
    labels = label_runs(sources)
    evaluations = []
    for source, label in zip(sources, labels):
        if args.checkpoint:
            if several or args.output is None:
                folder = default_eval_folder(source, args.split, reverse=args.reverse)
            else:
                folder = args.output
            evaluation = evaluate_checkpoint(
                source,
                folder,
                data=args.data,
                split=args.split,
                dropout=dropout_flag(args),
                norm_stats=args.norm_stats,
                seed=args.seed,
                device=args.device,
                runtime=args.runtime,
                direction=args.direction,
                reverse=args.reverse,
                label=label,
                fcn=fcn,
                perceptual=perceptual,
                progress=not args.quiet,
            )
        else:
            folder = source / "eval" if several or args.output is None else args.output
            data_root = resolve_data_root(args.data) if args.data else None
            evaluation = evaluate_images(
                list_result_images(source),
                folder,
                label=label,
                split=args.split,
                fcn=fcn,
                perceptual=perceptual,
                data_root=data_root,
                settings={"results": str(source)},
                progress=not args.quiet,
            )
        print_evaluation(evaluation)
        evaluations.append(evaluation)
    if several:
        folder = args.output or Path(os.path.commonpath([p.resolve() for p in sources])) / f"compare-{args.split}"
        print(f"comparison: {write_comparison(folder, evaluations)}")


def fcn_options(args: argparse.Namespace) -> FcnOptions:
    """The FCN-score's settings from the flags; a bad palette or segmenter file fails here, before any
    translation, and is loaded once for every checkpoint."""
    from pix2pix.evaluate.fcn_score import SegmenterSettings, load_palette, load_segmenter_file
    from pix2pix.evaluate.pipeline import FcnOptions

    if args.fcn_size < 16 or args.fcn_iterations < 1:
        raise ValueError(
            f"--fcn-size must be >= 16 and --fcn-iterations >= 1, got {args.fcn_size}, {args.fcn_iterations}"
        )
    if args.fcn_score == "off":
        return FcnOptions("off")
    palette = detect_palette(args) if args.palette == "detect" else load_palette(args.palette)
    return FcnOptions(
        args.fcn_score,
        palette,
        SegmenterSettings(size=args.fcn_size, iterations=args.fcn_iterations, seed=args.fcn_seed),
        load_segmenter_file(args.fcn_segmenter, palette) if args.fcn_segmenter else None,
    )


def detect_palette(args: argparse.Namespace) -> Palette:
    """`--palette detect`: the label colours of the evaluation data's training split, saved as a JSON file."""
    from pix2pix.data.builtin import resolve_data_root
    from pix2pix.evaluate.palette import detect_dataset_palette, save_detected_palette
    from pix2pix.evaluate.pipeline import evaluation_data_root
    from pix2pix.inference.formats import load_model

    if args.data:
        root = resolve_data_root(args.data)
    elif args.checkpoint:  # what `evaluate_checkpoint` falls back to: the data the run was trained on
        root = evaluation_data_root(None, load_model(args.checkpoint[0], device="cpu"))
    else:
        raise ValueError("--palette detect reads the label colours from a training split: pass --data ROOT")
    detected = detect_dataset_palette(root)
    path = save_detected_palette(root, detected.palette)
    print(
        f"palette: {len(detected.palette.colors)} classes detected in side {detected.label_side} of "
        f"{detected.n_images} pairs of {root / 'train'}; saved to {path} (reusable with --palette FILE)"
    )
    return detected.palette


def print_evaluation(evaluation) -> None:
    from pix2pix.evaluate.report import format_value, metric_label

    means = "  ".join(
        f"{metric_label(name)} {format_value(stats['mean'])}" for name, stats in evaluation.summary.items()
    )
    print(f"{evaluation.label}: {len(evaluation.rows)} images  {means}")
    if evaluation.fid:
        print(f"  FID {format_value(evaluation.fid['value'])} ({evaluation.fid['n_images']} images per side)")
    if evaluation.fcn:
        scores = evaluation.fcn["generated"]
        real = evaluation.fcn.get("real")
        print(
            "  FCN-score (generated"
            + (" / real" if real else "")
            + "): "
            + "  ".join(
                f"{key} {format_value(value)}" + (f" / {format_value(real[key])}" if real else "")
                for key, value in scores.items()
            )
        )
    for note in evaluation.notes:
        print(f"  {note}")
    print(f"  report: {evaluation.folder / 'index.html'}")


def run_summary(args: argparse.Namespace) -> None:
    from pix2pix.evaluate.summary import summarize_checkpoint, summarize_config

    if args.checkpoint:
        print(summarize_checkpoint(args.checkpoint, layers=args.layers))
    else:
        print(summarize_config(build_config(args), layers=args.layers))
