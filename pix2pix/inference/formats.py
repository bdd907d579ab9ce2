"""The one place that opens a model file and decides what kind it is.

`load_model(path)` takes anything a user may name as a model: a run folder, one of our `.pt`
checkpoints, an official `latest_net_G.pth` state dict, `pretrained:NAME` (a generator the paper's
authors released, downloaded into the cache on first use: pix2pix.inference.pretrained), those four in
torch (`Pix2Pix`); or an `.onnx` export (onnxruntime, `OnnxPix2Pix`, without importing torch). A
TorchScript export is refused with a pointer to `torch.jit.load` by the checkpoint reader
(pix2pix.checkpoint), which `pix2pix train --resume` and `pix2pix summary` share.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pix2pix.inference.onnx_model import OnnxPix2Pix
from pix2pix.inference.pretrained import is_pretrained_name

if TYPE_CHECKING:
    from pix2pix.inference.torch_model import Pix2Pix


def is_onnx_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".onnx"


def check_export_suffix(out: str | Path, export_format: str) -> None:
    """Refuse a file name that `load_model` would take for the other format: it tells them apart by the
    .onnx suffix (an ONNX export in model.pt would be read as a checkpoint, and fail)."""
    if (export_format == "onnx") != is_onnx_file(out):
        wanted = "a name ending in .onnx" if export_format == "onnx" else "a name not ending in .onnx (e.g. model.ts)"
        kind = "an ONNX" if export_format == "onnx" else "a TorchScript"
        raise ValueError(f"{out}: {kind} export needs {wanted}, the suffix loaders tell formats by")


def load_model(
    path: str | Path,
    *,
    device: str = "auto",
    netg: str | None = None,
    norm: str | None = None,
    runtime: str = "auto",
    reverse: bool = False,
) -> Pix2Pix | OnnxPix2Pix:
    """Open a model file of any kind we read; `netg` and `norm` are optional hints for official files
    (they are inferred from the keys); `runtime` is the torch models' engine choice (`Pix2Pix.runtime_for`);
    `reverse` takes a CycleGAN run's B -> A generator. `Pix2Pix.load` is this function."""
    if reverse and (is_onnx_file(path) or is_pretrained_name(path)):
        raise ValueError(f"{path}: --reverse needs a CycleGAN run (its checkpoint holds the B -> A generator)")
    if is_onnx_file(path):
        if runtime == "torch":
            raise ValueError(f"{path}: an ONNX export runs in onnxruntime only; --runtime torch needs a checkpoint")
        return OnnxPix2Pix.from_file(path, device=device)
    from pix2pix.inference.torch_model import Pix2Pix  # here, so an .onnx file never imports torch

    if is_pretrained_name(path):
        model = Pix2Pix.from_pretrained(str(path), device=device)
    else:
        model = Pix2Pix.from_checkpoint(path, device=device, netg=netg, norm=norm, generator="b" if reverse else "a")
    model.runtime = runtime
    return model
