"""The official pix2pix U-Net's module layout, for the benchmarks' baseline only.

The official code builds its U-Net as a recursion of skip-connection blocks: each level is
Sequential(down, the next level, up) whose forward concatenates its input with that Sequential's output,
with in-place activations. Our UNetGenerator computes the same function with a flat encoder/decoder; the
benchmarks time the official layout so that a speed-up is measured against what users of the official
code run (tests/test_performance.py checks that both give the same outputs with the same weights, whose
names `pix2pix.nn.official` maps). Written from the paper's appendix 6.1.1 and the official module names.
"""

from __future__ import annotations

import torch
from torch import nn


class SkipBlock(nn.Module):
    """One official U-Net level: `model` is [down..., inner level, up...]; every level but the outermost
    returns its input concatenated with `model`'s output."""

    def __init__(
        self,
        outer: int,
        inner: int,
        *,
        in_channels: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        down = nn.Conv2d(in_channels or outer, inner, 4, stride=2, padding=1, bias=False)
        if outermost:
            assert submodule is not None
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1)
            layers = [down, submodule, nn.ReLU(True), up, nn.Tanh()]
        elif innermost:
            up = nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=False)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, nn.BatchNorm2d(outer)]
        else:
            assert submodule is not None
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=False)
            layers = [nn.LeakyReLU(0.2, True), down, nn.BatchNorm2d(inner), submodule, nn.ReLU(True), up]
            layers += [nn.BatchNorm2d(outer), *([nn.Dropout(0.5)] if dropout else [])]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class OfficialUNet(nn.Module):
    """The official UnetGenerator with batch norm: `num_downs` levels, ngf `base_channels`, dropout on the
    num_downs - 5 inner 8ngf levels."""

    def __init__(self, in_channels: int, out_channels: int, num_downs: int, base_channels: int = 64) -> None:
        super().__init__()
        ngf = base_channels
        block = SkipBlock(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = SkipBlock(ngf * 8, ngf * 8, submodule=block, dropout=True)
        for outer in (ngf * 4, ngf * 2, ngf):
            block = SkipBlock(outer, outer * 2, submodule=block)
        self.model = SkipBlock(out_channels, ngf, in_channels=in_channels, submodule=block, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def official_unet_like(generator: nn.Module) -> OfficialUNet:
    """An OfficialUNet holding `generator`'s weights and buffers (a UNetGenerator with batch norm)."""
    from pix2pix.nn.official import map_official_unet_names

    num_downs = len(generator.encoder)
    first = generator.encoder[0][0]
    official = OfficialUNet(first.in_channels, generator.decoder[-1][1].out_channels, num_downs, first.out_channels)
    ours = generator.state_dict()
    names = map_official_unet_names(num_downs)
    state = {}
    for key in official.state_dict():
        path, _, name = key.rpartition(".")
        state[key] = ours[f"{names[path]}.{name}"]
    official.load_state_dict(state)
    return official.to(next(generator.parameters()).device)
