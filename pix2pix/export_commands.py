"""`pix2pix export`: kept apart from `pix2pix.export` so `pix2pix --help` does not import torch."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pix2pix.flags import add_reverse_flag, add_test_time_flags

EXPORT_FORMATS = ("onnx", "torchscript")  # as pix2pix.export.EXPORT_FORMATS, without importing torch


def run_export(args: argparse.Namespace) -> None:
    from pix2pix.export import export_model
    from pix2pix.inference.torch_model import Pix2Pix

    check_export_path(Path(args.out), args.format, args.checkpoint)
    model = Pix2Pix.load(args.checkpoint, device="cpu", reverse=args.reverse)
    if not isinstance(model, Pix2Pix):  # an .onnx file opens as OnnxPix2Pix: its network is already fixed
        raise ValueError(f"{args.checkpoint}: an ONNX export already; export from the run folder or checkpoint")
    out = export_model(
        model, args.out, export_format=args.format, dropout=args.dropout == "on", norm_stats=args.norm_stats
    )
    print(f"wrote {out} ({args.format}, stride {model.stride}, dropout {args.dropout}, {args.norm_stats} statistics)")


def check_export_path(out: Path, export_format: str, checkpoint: str) -> None:
    """Refuse, before loading anything, an --out that would replace a checkpoint or that `Pix2Pix.load`
    would later take for the other format (it tells them apart by the .onnx suffix)."""
    from pix2pix.checkpoint import CHECKPOINT_DIR
    from pix2pix.inference.formats import check_export_suffix

    if out.is_dir():  # torch.jit.save would fail with a C++ traceback
        raise ValueError(f"--out {out} is a folder; name the file to write in it")
    check_export_suffix(out, export_format)
    source, folder = Path(checkpoint), out.resolve().parent
    in_a_run = folder.name == CHECKPOINT_DIR and (folder.parent / "config.json").is_file()
    if in_a_run or (source.is_file() and out.resolve() == source.resolve()):
        raise ValueError(f"--out {out} would replace a checkpoint; write the export outside the run's checkpoints")


def add_export_command(commands: Any) -> None:
    export = commands.add_parser("export", help="write a trained generator as ONNX or TorchScript")
    export.add_argument("--checkpoint", required=True, help="run folder, checkpoint file, or official latest_net_G.pth")
    export.add_argument("--format", choices=EXPORT_FORMATS, required=True)
    export.add_argument("--out", required=True, help="file to write (e.g. model.onnx, model.ts)")
    # deterministic by default: ONNX can express only that mode (dropout on / batch statistics: torchscript)
    add_test_time_flags(export, dropout="off", norm_stats="running")
    add_reverse_flag(export)
    export.set_defaults(run=run_export)
