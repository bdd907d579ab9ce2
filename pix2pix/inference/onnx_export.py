"""ONNX export of a generator, with its run config in the file's metadata: what `pix2pix export --format
onnx` writes, and what `Pix2Pix` runs with onnxruntime in the deterministic mode (`runtime="auto"`).

It lives with inference, not with `pix2pix.export`, because translation itself uses it.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from pix2pix import __version__
from pix2pix.atomic import write_atomically
from pix2pix.nn.modes import set_inference_mode

if TYPE_CHECKING:
    from pix2pix.inference.torch_model import Pix2Pix

ONNX_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "source", "target"  # (B, in_channels, H, W) -> (B, out_channels, H, W), in [-1, 1]


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


def onnx_bytes(
    network: nn.Module,
    example: tuple[torch.Tensor, ...],
    inputs: dict[str, dict[int, str]],
    outputs: dict[str, dict[int, str]],
) -> bytes:
    """`network` traced on `example` into an ONNX graph (opset ONNX_OPSET): `inputs` and `outputs` name the
    graph's tensors in order, each with its dynamic axes."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # the stride check in forward() is a Python branch the tracer bakes in; ONNX shapes stay dynamic
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # dynamo=False is deliberate (the legacy exporter handles dynamic axes of these networks well);
        # its notes (constant folding, instance norm always using instance statistics) are not for users
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", module=r"torch\.onnx")
        torch.onnx.export(
            network,
            example,
            buffer,  # type: ignore[arg-type]  # the legacy exporter writes to a file object; the hint says paths only
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=inputs | outputs,
        )
    return buffer.getvalue()


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
    graph = onnx_bytes(generator, (example,), {INPUT_NAME: dynamic}, {OUTPUT_NAME: dynamic})
    proto = onnx.load_from_string(graph)
    for key, value in describe_export(model, dropout=dropout, norm_stats=norm_stats).items():
        proto.metadata_props.add(key=key, value=value)
    out = Path(out)
    write_atomically(out, lambda file: file.write(proto.SerializeToString()))
    return out
