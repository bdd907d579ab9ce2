"""The paper's test-time protocol (batch statistics, seeded dropout) in onnxruntime, one image at a time.

With a batch of one, batch norm on batch statistics normalises each channel over the image itself: that
is instance normalisation with batch norm's scale and shift, which ONNX has. onnxruntime cannot repeat
torch's dropout draws, so torch draws the masks (the same Bernoulli draws, in the same order, from the
same seeded generator as the eager network's Dropout layers) and the graph multiplies by them. The
outputs are eager PyTorch's to float error (tests/test_runtime.py); the export is cached like the
deterministic one.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pix2pix.atomic import write_atomically
from pix2pix.inference.onnx_export import onnx_bytes


class MaskedDropout(nn.Module):
    """Dropout whose mask (zeros and 1 / (1 - p)) is given from outside, before each forward."""

    def __init__(self) -> None:
        super().__init__()
        self.mask = torch.ones(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


class ProtocolNetwork(nn.Module):
    """`generator` with its batch norms on the image's own statistics and its dropouts fed by masks:
    forward(x, *masks), one mask per Dropout in the order they run."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = copy.deepcopy(generator).cpu().eval()
        self.dropouts: list[MaskedDropout] = []
        for parent in list(self.generator.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.BatchNorm2d):
                    setattr(parent, name, instance_norm_like(child))
                elif isinstance(child, nn.Dropout):
                    masked = MaskedDropout()
                    setattr(parent, name, masked)
                    self.dropouts.append(masked)

    def forward(self, x: torch.Tensor, *masks: torch.Tensor) -> torch.Tensor:
        for dropout, mask in zip(self.dropouts, masks, strict=True):
            dropout.mask = mask
        return self.generator(x)


def instance_norm_like(norm: nn.BatchNorm2d) -> nn.InstanceNorm2d:
    instance = nn.InstanceNorm2d(norm.num_features, eps=norm.eps, affine=True)
    with torch.no_grad():
        instance.weight.copy_(norm.weight)
        instance.bias.copy_(norm.bias)
    return instance


def export_protocol_onnx(generator: nn.Module, in_channels: int, stride: int, out: Path) -> Path:
    """Write the ProtocolNetwork of `generator` as ONNX: inputs `source` (1, in, H, W) and `mask0`...,
    dynamic in H and W."""
    network = ProtocolNetwork(generator)
    side = stride * max(1, 64 // stride)  # as the deterministic export: room for a ResNet's padding
    example = torch.zeros(1, in_channels, side, side)
    masks = [torch.ones(shape) for shape in dropout_shapes(generator, tuple(example.shape))]
    names = [f"mask{i}" for i in range(len(masks))]
    spatial = {2: "height", 3: "width"}
    inputs = {"source": spatial} | {name: {2: f"{name}_height", 3: f"{name}_width"} for name in names}
    graph = onnx_bytes(network, (example, *masks), inputs, {"target": spatial})
    write_atomically(out, lambda file: file.write(graph))
    return out


def dropout_shapes(generator: nn.Module, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The output shape of each Dropout of `generator` for an input of `input_shape`, in the order they run
    (a forward on the meta device: shapes only, no arithmetic)."""
    shapes: list[tuple[int, ...]] = []
    replica = copy.deepcopy(generator).to("meta")
    hooks = [
        module.register_forward_hook(lambda _module, _inputs, output: shapes.append(tuple(output.shape)))
        for module in replica.modules()
        if isinstance(module, nn.Dropout)
    ]
    replica(torch.zeros(input_shape, device="meta"))
    for hook in hooks:
        hook.remove()
    return shapes


class ProtocolSession:
    """An onnxruntime session of a ProtocolNetwork export, fed with torch-drawn dropout masks."""

    def __init__(self, generator: nn.Module, path: Path) -> None:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.meta = copy.deepcopy(generator).to("meta")  # for the masks' shapes at each input size
        rates = {module.p for module in generator.modules() if isinstance(module, nn.Dropout)}
        if len(rates) > 1:
            raise ValueError(f"dropout layers of different rates ({sorted(rates)}): not one mask rate")
        self.keep = 1.0 - rates.pop() if rates else 1.0
        self._shapes: dict[tuple[int, ...], list[tuple[int, ...]]] = {}

    def run(self, source: np.ndarray, *, dropout: bool, seed: int | None) -> np.ndarray:
        """(1, in, H, W) -> (1, out, H, W); the dropout draws are those of the eager network run after
        `torch.manual_seed(seed)` (or from the global RNG for seed None)."""
        shape = tuple(source.shape)
        if shape not in self._shapes:
            self._shapes[shape] = dropout_shapes(self.meta, shape)
        feed = {"source": np.ascontiguousarray(source, dtype=np.float32)}
        for i, mask in enumerate(self.masks(self._shapes[shape], dropout=dropout, seed=seed)):
            feed[f"mask{i}"] = mask.numpy()
        return self.session.run(None, feed)[0]

    def masks(self, shapes: list[tuple[int, ...]], *, dropout: bool, seed: int | None) -> list[torch.Tensor]:
        """A seed draws from a generator of its own (the same numbers as the global one after
        `manual_seed`), so concurrent translations (serve's threads) never disturb each other's draws."""
        if not dropout:
            return [torch.ones(shape) for shape in shapes]
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return [torch.empty(shape).bernoulli_(self.keep, generator=generator) / self.keep for shape in shapes]
