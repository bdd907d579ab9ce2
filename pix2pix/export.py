"""Export a trained generator to ONNX or TorchScript, with its run config embedded in the file.

Both formats take any batch size and any height and width that are multiples of the generator's
stride. The exported mode is fixed at export time: deterministic (dropout off, running norm statistics)
by default. TorchScript can also carry the paper's protocol (dropout on, batch statistics); ONNX cannot
(the exporter cannot express batch-statistics BatchNorm, and onnxruntime runs Dropout as the identity),
so it refuses those modes rather than write a file that silently does something else.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from pix2pix import __version__
from pix2pix.inference.torch_model import Pix2Pix
from pix2pix.nn.modes import set_inference_mode

EXPORT_FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "source", "target"  # (B, in_channels, H, W) -> (B, out_channels, H, W), in [-1, 1]
TORCHSCRIPT_CONFIG, TORCHSCRIPT_EXPORT = "config.json", "export.json"  # names of the `_extra_files`


def describe_export(model: Pix2Pix, *, dropout: bool, norm_stats: str) -> dict[str, str]:
    """The metadata both formats carry: the run config (JSON) and what a runtime needs to call the network."""
    return {
        "config": json.dumps(model.config.to_dict()),
        "stride": str(model.stride),
        "in_channels": str(model.config.model.in_channels),
        "out_channels": str(model.config.model.out_channels),
        "dropout": "on" if dropout else "off",
        "norm_stats": norm_stats,
        "pix2pix_version": __version__,
    }


def prepare_generator(model: Pix2Pix, *, dropout: bool, norm_stats: str) -> tuple[nn.Module, torch.Tensor]:
    """A CPU copy of the generator in the export mode, and an example input to trace it with."""
    generator = set_inference_mode(copy.deepcopy(model.generator).cpu(), dropout=dropout, norm_stats=norm_stats)
    # at least 64 px: at the stride alone a ResNet's 7x7 reflection padding would not fit the maps
    side = model.stride * max(1, 64 // model.stride)
    example = torch.zeros(1, model.config.model.in_channels, side, side)
    return generator, example


def export_onnx(model: Pix2Pix, out: str | Path, *, dropout: bool = False, norm_stats: str = "running") -> Path:
    """Write `out` (.onnx, opset 17) with dynamic batch, height and width; config in metadata_props."""
    import onnx

    if dropout or norm_stats != "running":
        raise ValueError(
            "ONNX export supports only the deterministic mode (dropout off, running norm statistics); "
            "use --format torchscript for dropout or batch statistics"
        )
    generator, example = prepare_generator(model, dropout=dropout, norm_stats=norm_stats)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # the stride check in forward() is a Python branch the tracer bakes in; ONNX shapes stay dynamic
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # dynamo=False is deliberate (the legacy exporter handles dynamic axes of these networks well);
        # its notes (constant folding, instance norm always using instance statistics) are not for users
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", module=r"torch\.onnx")
        torch.onnx.export(
            generator,
            (example,),
            buffer,  # type: ignore[arg-type]  # the legacy exporter writes to a file object; the hint says paths only
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic},
        )
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in describe_export(model, dropout=dropout, norm_stats=norm_stats).items():
        proto.metadata_props.add(key=key, value=value)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, out)
    return out


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
    return exporters[export_format](model, out, dropout=dropout, norm_stats=norm_stats)
