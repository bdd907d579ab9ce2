"""Loading state dicts saved by the official pix2pix code (e.g. `latest_net_G.pth`).

The official code saves `state_dict()` of the bare network. Its ResNet and discriminators share our
module layout; its U-Net is a recursion of UnetSkipConnectionBlocks whose names are mapped onto our flat
encoder/decoder. The architecture is read from the keys and shapes, so no flags are needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from pix2pix.nn.generators import UNetGenerator
from pix2pix.nn.registry import GENERATORS, build_discriminator, build_generator

StateDict = Mapping[str, Tensor]


def official_unet_prefix(level: int) -> str:
    """Module prefix of official U-Net level `level` (0 = outermost); each level nests the next one."""
    if level == 0:
        return "model.model."
    # the outermost block holds its submodule at index 1, every other block at index 3
    return "model.model.1.model." + "3.model." * (level - 1)


def map_official_unet_names(num_downs: int) -> dict[str, str]:
    """Official module path -> ours, for every conv and norm of a U-Net with `num_downs` levels."""
    innermost = num_downs - 1
    names = {}
    for level in range(num_downs):
        down, up = f"encoder.{level}.", f"decoder.{innermost - level}."
        # official block layouts: outermost [downconv, sub, relu, upconv, tanh];
        # innermost [lrelu, downconv, relu, upconv, upnorm];
        # others [lrelu, downconv, downnorm, sub, relu, upconv, upnorm, (dropout)]
        if level == 0:
            pairs = {"0": down + "0", "3": up + "1"}
        elif level == innermost:
            pairs = {"1": down + "1", "3": up + "1", "4": up + "2"}
        else:
            pairs = {"1": down + "1", "2": down + "2", "5": up + "1", "6": up + "2"}
        names.update({official_unet_prefix(level) + index: ours for index, ours in pairs.items()})
    return names


def is_instance_norm_statistic(module: nn.Module, key: str) -> bool:
    path, _, name = key.rpartition(".")
    if name not in ("running_mean", "running_var", "num_batches_tracked"):
        return False
    try:
        return isinstance(module.get_submodule(path), nn.InstanceNorm2d)
    except AttributeError:
        return False


def match_buffers(state_dict: StateDict, module: nn.Module) -> dict[str, Tensor]:
    """Reconcile the buffers that differ between PyTorch versions; everything else must match exactly."""
    expected = module.state_dict()
    matched: dict[str, Tensor] = {}
    unexpected = []
    for key, value in state_dict.items():
        if key in expected:
            matched[key] = value
        # Older code saved running statistics for instance norm (now not tracked) and newer PyTorch
        # saves batch-norm counters that older code lacks: both carry no weights, so they are dropped.
        elif not (key.endswith(".num_batches_tracked") or is_instance_norm_statistic(module, key)):
            unexpected.append(key)
    for key in expected.keys() - matched.keys():
        if key.endswith(".num_batches_tracked"):
            # the counter is only read when momentum=None (cumulative averages), which we never use
            matched[key] = torch.tensor(0, dtype=torch.long)
    missing = sorted(expected.keys() - matched.keys())
    if unexpected or missing:
        raise ValueError(
            f"state dict does not fit {type(module).__name__}: unexpected keys {unexpected}, missing keys {missing}"
        )
    return {key: matched[key] for key in expected}


def convert_official_state_dict(state_dict: StateDict, module: nn.Module) -> dict[str, Tensor]:
    """An official state dict with our key names for `module`, ready for `module.load_state_dict`."""
    if isinstance(module, UNetGenerator):
        names = map_official_unet_names(len(module.encoder))
        renamed = {}
        for key, value in state_dict.items():
            path, _, name = key.rpartition(".")
            renamed[f"{names.get(path, path)}.{name}"] = value  # unknown names are reported by match_buffers
        state_dict = renamed
    return match_buffers(state_dict, module)


def infer_official_norm(state_dict: StateDict, conv_has_bias: bool) -> str:
    # batch-norm scales are the only 1-D weights; official instance norm has no parameters at all
    if any(key.endswith(".weight") and value.ndim == 1 for key, value in state_dict.items()):
        return "batch"
    if conv_has_bias:
        return "instance"
    raise ValueError(
        "the state dict has neither norm parameters nor conv biases: an official norm='none' network, "
        "whose biasless convs ours does not reproduce (our 'none' keeps the bias); expected batch or instance norm"
    )


def describe_official_unet(state_dict: StateDict) -> dict[str, Any]:
    num_downs = 1
    while any(key.startswith(official_unet_prefix(num_downs)) for key in state_dict):
        num_downs += 1
    if num_downs < 5:
        raise ValueError(f"official U-Net with {num_downs} levels; expected at least 5")
    first = state_dict["model.model.0.weight"]  # Conv2d (ngf, in, 4, 4)
    last = state_dict["model.model.3.weight"]  # ConvTranspose2d (2ngf, out, 4, 4)
    return {
        "name": {7: "unet_128", 8: "unet_256"}.get(num_downs, "unet"),
        "in_channels": first.shape[1],
        "out_channels": last.shape[1],
        "image_size": 2**num_downs,  # the smallest size whose derived depth is num_downs
        "base_channels": first.shape[0],
        "norm": infer_official_norm(state_dict, official_unet_prefix(1) + "1.bias" in state_dict),
        "dropout": True,  # dropout leaves no keys; official pix2pix trains its U-Net with it
        "upsample": "transpose",
    }


def describe_official_resnet(state_dict: StateDict) -> dict[str, Any]:
    blocks = sorted({int(key.split(".")[1]) for key in state_dict if ".conv_block." in key})
    name = f"resnet_{len(blocks)}blocks"
    if name not in GENERATORS:
        raise ValueError(f"official ResNet with {len(blocks)} blocks; expected one of {sorted(GENERATORS)}")
    first = state_dict["model.1.weight"]  # Conv2d (ngf, in, 7, 7)
    last = state_dict[f"model.{max(int(key.split('.')[1]) for key in state_dict)}.weight"]  # (out, ngf, 7, 7)
    return {
        "name": name,
        "in_channels": first.shape[1],
        "out_channels": last.shape[0],
        "image_size": 256,  # only the U-Net's depth depends on it; the official default crop
        "base_channels": first.shape[0],
        "norm": infer_official_norm(state_dict, "model.1.bias" in state_dict),
        # a block's second conv sits at index 5, or at 6 when dropout (no keys) comes before it
        "dropout": f"model.{blocks[0]}.conv_block.5.weight" not in state_dict,
        "upsample": "transpose",
    }


def describe_official_generator(
    state_dict: StateDict, netg: str | None = None, norm: str | None = None
) -> dict[str, Any]:
    """`build_generator` keyword arguments (`name` included) for an official generator state dict.

    `netg` and `norm` are optional hints: they are checked against the keys, and `netg="unet"` picks the
    size-derived name over "unet_256"/"unet_128".
    """
    if "model.model.0.weight" in state_dict:
        spec = describe_official_unet(state_dict)
    elif "model.1.weight" in state_dict:
        spec = describe_official_resnet(state_dict)
    else:
        raise ValueError("not an official U-Net or ResNet generator: no 'model.model.0.weight' or 'model.1.weight' key")
    if norm is not None and norm != spec["norm"]:
        raise ValueError(f"norm {norm!r} does not match the state dict, which has {spec['norm']!r} norm layers")
    if netg is not None:
        allowed = {spec["name"], "unet"} if spec["name"].startswith("unet") else {spec["name"]}
        if netg not in allowed:
            raise ValueError(f"netg {netg!r} does not match the state dict; expected one of {sorted(allowed)}")
        spec["name"] = netg
    return spec


def describe_official_discriminator(state_dict: StateDict) -> dict[str, Any]:
    """`build_discriminator` keyword arguments (`name` included) for an official discriminator state dict."""
    if "net.0.weight" in state_dict:
        first = state_dict["net.0.weight"]  # Conv2d (ndf, in, 1, 1)
        return {
            "name": "pixel",
            "in_channels": first.shape[1],
            "base_channels": first.shape[0],
            "n_layers": 3,  # unused by the pixel discriminator; the official default
            "norm": infer_official_norm(state_dict, "net.2.bias" in state_dict),
        }
    if "model.0.weight" in state_dict:
        first = state_dict["model.0.weight"]  # Conv2d (ndf, in, 4, 4)
        num_convs = sum(key.endswith(".weight") and value.ndim == 4 for key, value in state_dict.items())
        return {
            "name": "patch",
            "in_channels": first.shape[1],
            "base_channels": first.shape[0],
            "n_layers": num_convs - 2,  # besides the first conv and the logit conv
            "norm": infer_official_norm(state_dict, "model.2.bias" in state_dict),
        }
    raise ValueError("not an official PatchGAN or PixelGAN discriminator: no 'model.0.weight' or 'net.0.weight' key")


def load_official_generator(state_dict: StateDict, netg: str | None = None, norm: str | None = None) -> nn.Module:
    generator = build_generator(**describe_official_generator(state_dict, netg=netg, norm=norm))
    generator.load_state_dict(convert_official_state_dict(state_dict, generator))
    return generator


def load_official_discriminator(state_dict: StateDict) -> nn.Module:
    discriminator = build_discriminator(**describe_official_discriminator(state_dict))
    discriminator.load_state_dict(convert_official_state_dict(state_dict, discriminator))
    return discriminator
