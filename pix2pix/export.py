"""Export a trained generator to ONNX or TorchScript, with its run config embedded in the file.

Both formats take any batch size and any height and width that are multiples of the generator's
stride. The exported mode is fixed at export time: deterministic (dropout off, running norm statistics)
by default. TorchScript can also carry the paper's protocol (dropout on, batch statistics); ONNX cannot
(the exporter cannot express batch-statistics BatchNorm, and onnxruntime runs Dropout as the identity),
so it refuses those modes rather than write a file that silently does something else.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from pix2pix.inference.formats import check_export_suffix
from pix2pix.inference.onnx_export import describe_export, export_onnx, prepare_generator
from pix2pix.inference.torch_model import Pix2Pix

__all__ = ["EXPORT_FORMATS", "export_model", "export_onnx", "export_torchscript"]

EXPORT_FORMATS = ("onnx", "torchscript")
TORCHSCRIPT_CONFIG, TORCHSCRIPT_EXPORT = "config.json", "export.json"  # names of the `_extra_files`


def export_torchscript(model: Pix2Pix, out: str | Path, *, dropout: bool = False, norm_stats: str = "running") -> Path:
    """Write a traced TorchScript module; `torch.jit.load(out, _extra_files=...)` reads the config back.

    With dropout on, the module draws from torch's global RNG, as the eager model does.
    """
    generator, example = prepare_generator(model, dropout=dropout, norm_stats=norm_stats)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")  # see docs/deployment.md
        # check_trace re-runs the trace and compares outputs, which dropout's randomness would fail
        traced = torch.jit.trace(generator, example, check_trace=not dropout)
    metadata = describe_export(model, dropout=dropout, norm_stats=norm_stats)
    extra_files = {TORCHSCRIPT_CONFIG: metadata.pop("config"), TORCHSCRIPT_EXPORT: json.dumps(metadata)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
        torch.jit.save(traced, str(out), _extra_files=extra_files)
    return out


def export_model(
    model: Pix2Pix, out: str | Path, *, export_format: str, dropout: bool = False, norm_stats: str = "running"
) -> Path:
    exporters = {"onnx": export_onnx, "torchscript": export_torchscript}
    if export_format not in exporters:
        raise ValueError(f"unknown export format {export_format!r}; expected one of {EXPORT_FORMATS}")
    check_export_suffix(out, export_format)
    return exporters[export_format](model, out, dropout=dropout, norm_stats=norm_stats)
