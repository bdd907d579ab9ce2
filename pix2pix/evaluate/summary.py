"""`pix2pix summary`: the layers of G and D with output shapes and parameter counts, and D's receptive field.

Networks are built on the meta device: shapes and counts without allocating or initialising weights, so
even the paper's 54M-parameter U-Net is summarised instantly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pix2pix.checkpoint import checkpoint_config, is_our_checkpoint, read_checkpoint_file, resolve_checkpoint
from pix2pix.config import RunConfig
from pix2pix.inference.formats import is_onnx_file, load_model
from pix2pix.inference.pretrained import download_pretrained, is_pretrained_name
from pix2pix.networks import build_discriminator_for, build_generator_for, discriminator_channels
from pix2pix.nn.discriminators import receptive_field, receptive_fields
from pix2pix.nn.official import describe_official_generator
from pix2pix.nn.registry import build_generator


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    parameters: int


def list_layers(network: nn.Module, input_shape: tuple[int, ...]) -> tuple[list[LayerRow], Any]:
    """Leaf modules in the order they run, with their output shapes; and the network's output shape (one
    per scale, for a multi-scale discriminator)."""
    rows: list[LayerRow] = []
    names = {module: name for name, module in network.named_modules()}

    def record(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        parameters = sum(p.numel() for p in module.parameters())  # a layer's own, or its parametrization's
        rows.append(LayerRow(names[module], type(module).__name__, tuple(output.shape), parameters))

    # a spectral-normalised conv keeps its weight in a `parametrizations` child: it is still one layer
    leaves = [
        module
        for name, module in network.named_modules()
        if "parametrizations" not in name and all(child == "parametrizations" for child, _ in module.named_children())
    ]
    handles = [module.register_forward_hook(record) for module in leaves]
    try:
        # eval: a batch of one at a 1x1 bottleneck is fine for BatchNorm with running statistics
        output = network.eval()(torch.zeros(input_shape, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return rows, [tuple(o.shape) for o in output] if isinstance(output, list) else tuple(output.shape)


def count_parameters(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def format_layer_table(rows: list[LayerRow], fields: dict[str, int] | None = None) -> str:
    """One line per layer; with `fields` (a discriminator's), the receptive field of each layer's output."""
    width = max([len(row.name) for row in rows] + [5])
    header = f"{'layer':<{width}}  {'type':<18} {'output shape':<22} {'params':>12}"
    lines = [header + ("  receptive field" if fields is not None else "")]
    field = 1
    for row in rows:
        line = f"{row.name:<{width}}  {row.kind:<18} {str(row.output_shape):<22} {row.parameters:>12,}"
        if fields is not None:
            field = fields.get(row.name, field)  # activations and norms keep the field of the conv before
            line += f"  {field}x{field}"
        lines.append(line)
    return "\n".join(lines)


def describe_network(
    title: str,
    network: nn.Module,
    input_shape: tuple[int, ...],
    layers: bool = True,
    fields: dict[str, int] | None = None,
) -> str:
    rows, output_shape = list_layers(network, input_shape)
    total = count_parameters(network)
    trainable = sum(p.numel() for p in network.parameters() if p.requires_grad)
    parts = [f"{title}: input {input_shape} -> output {output_shape}"]
    if layers:
        parts.append(format_layer_table(rows, fields))
    parts.append(f"total parameters: {total:,} (trainable {trainable:,}; {total * 4 / 2**20:.1f} MiB as float32)")
    return "\n".join(parts)


def summarize_config(config: RunConfig, layers: bool = True) -> str:
    """The summary of the networks `config` builds, at its crop size."""
    model, size = config.model, config.data.crop_size
    with torch.device("meta"):
        generator = build_generator_for(config)
        discriminator = build_discriminator_for(config) if config.loss.gan else None
    title = (
        f"Generator {model.generator} (ngf {model.base_channels}, norm {model.norm}, "
        f"dropout {'on' if model.dropout else 'off'}, upsample {model.upsample})"
    )
    parts = [describe_network(title, generator, (1, model.in_channels, size, size), layers)]
    if discriminator is None:
        parts.append("No discriminator: the L1-only baseline (--no-gan).")
    else:
        title = (
            f"Discriminator {model.discriminator}"
            + (f" with {model.disc_layers} layers" if model.discriminator == "patch" else "")
            + (f" at {model.disc_scales} image scales" if model.disc_scales > 1 else "")
            + f" (ndf {model.disc_channels}, norm {model.disc_norm}"
            + (", spectral norm" if model.disc_spectral_norm else "")
            + "; "
            + ("sees input and output stacked)" if model.disc_conditional else "sees the output only)")
        )
        d_input = (1, discriminator_channels(config), size, size)
        text = describe_network(title, discriminator, d_input, layers, receptive_fields(discriminator))
        field = receptive_field(discriminator)
        parts.append(f"{text}\nreceptive field: {field}x{field} pixels (each output logit judges one such patch)")
    return "\n\n".join(parts)


def summarize_checkpoint(path: str | Path, layers: bool = True) -> str:
    """Summary of a run folder, checkpoint or .onnx export from its saved config; an official G state dict
    gives G only."""
    if is_onnx_file(path):  # an export carries its config in its metadata
        return summarize_config(load_model(path, device="cpu").config, layers)
    path = download_pretrained(str(path)) if is_pretrained_name(path) else resolve_checkpoint(path)
    state = read_checkpoint_file(path, lazy=True)  # the config or the weights' shapes are all it needs
    if is_our_checkpoint(state):
        return summarize_config(checkpoint_config(state, path), layers)
    spec = describe_official_generator(state)
    with torch.device("meta"):
        generator = build_generator(**spec)
    size = spec["image_size"]
    title = f"Generator {spec['name']} (ngf {spec['base_channels']}, norm {spec['norm']}; official state dict)"
    return describe_network(title, generator, (1, spec["in_channels"], size, size), layers)
