"""The one inference entry point: `Pix2Pix.load(path).translate(image)`.

Used by `pix2pix test`, evaluation, export and the web demo. Loads our checkpoints (a run folder or a
`.pt` file, no architecture flags needed) and official `latest_net_G.pth` state dicts.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from pix2pix.checkpoint import build_generator_for, load_checkpoint, read_checkpoint_file, resolve_checkpoint
from pix2pix.config import DataConfig, ModelConfig, RunConfig
from pix2pix.data.images import convert_channels
from pix2pix.data.lab import image_to_lab_tensors, lab_tensors_to_image
from pix2pix.data.transforms import image_to_tensor, resize_for_inference, tensor_to_image
from pix2pix.devices import resolve_device
from pix2pix.nn.modes import run_for_inference
from pix2pix.nn.official import convert_official_state_dict, describe_official_generator
from pix2pix.nn.registry import build_generator

# preprocessing modes that keep the image's own scale; the others resize to the square training size
SCALE_KEEPING = ("crop", "none", "scale_width", "scale_width_and_crop")


class Pix2Pix:
    """A trained generator with its config, translating PIL images to PIL images."""

    def __init__(self, generator: nn.Module, config: RunConfig, device: torch.device):
        self.generator = generator.to(device)
        self.config = config
        self.device = device

    @classmethod
    def load(
        cls, path: str | Path, *, device: str = "auto", netg: str | None = None, norm: str | None = None
    ) -> Pix2Pix:
        """Load a run folder, one of our checkpoints, or an official state dict.

        `netg` and `norm` are optional hints for official files (they are inferred from the keys).
        A `.onnx` file from `pix2pix export` gives an onnxruntime-backed model with the same interface.
        """
        if str(path).endswith(".onnx"):
            from pix2pix.onnx_model import OnnxPix2Pix  # onnxruntime is only needed for exported files

            return OnnxPix2Pix.from_file(path, device=device)
        target_device = resolve_device(device)
        path = resolve_checkpoint(path)
        state = read_checkpoint_file(path)
        if isinstance(state, dict) and "format_version" in state:
            state, config = load_checkpoint(path)
            generator = build_generator_for(config)
            generator.load_state_dict(state["generator"])
            return cls(generator, config, target_device)
        return cls.from_official_state_dict(state, target_device, netg=netg, norm=norm)

    @classmethod
    def from_official_state_dict(
        cls, state_dict: dict, device: torch.device, *, netg: str | None = None, norm: str | None = None
    ) -> Pix2Pix:
        spec = describe_official_generator(state_dict, netg=netg, norm=norm)
        generator = build_generator(**spec)
        generator.load_state_dict(convert_official_state_dict(state_dict, generator))
        model = ModelConfig(
            in_channels=spec["in_channels"],
            out_channels=spec["out_channels"],
            generator=spec["name"],
            base_channels=spec["base_channels"],
            norm=spec["norm"],
            dropout=spec["dropout"],
        )
        config = RunConfig(data=DataConfig(crop_size=spec["image_size"], load_size=spec["image_size"]), model=model)
        return cls(generator, config, device)

    @property
    def stride(self) -> int:
        return self.generator.stride

    def network_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) the network sees for an input of `size`."""
        if self.config.data.preprocess in SCALE_KEEPING:
            stride = self.stride
            return tuple(max(stride, round(side / stride) * stride) for side in size)  # type: ignore[return-value]
        return (self.config.data.crop_size, self.config.data.crop_size)

    @torch.no_grad()
    def translate(
        self, image: Image.Image, *, dropout: bool = True, norm_stats: str = "batch", seed: int | None = 0
    ) -> Image.Image:
        """Translate one image; the output has the input's size.

        Defaults follow the paper's protocol (dropout on, batch statistics); `seed` fixes the dropout
        draw (None leaves the global RNG alone). `dropout=False, norm_stats="running"` is the
        deterministic evaluation mode. Lab (colorization) models return an RGB image.
        """
        if self.config.data.color_space == "lab":
            return self.colorize(image, dropout=dropout, norm_stats=norm_stats, seed=seed)
        source = convert_channels(image, self.config.model.in_channels)
        resized = resize_for_inference(source, self.network_size(source.size))
        batch = image_to_tensor(resized)[None].to(self.device)  # (1, C, H, W)
        output = self.translate_tensor(batch, dropout=dropout, norm_stats=norm_stats, seed=seed)[0]
        result = tensor_to_image(output.cpu())
        return result if result.size == image.size else result.resize(image.size, Image.Resampling.BICUBIC)

    @torch.no_grad()
    def colorize(
        self, image: Image.Image, *, dropout: bool = True, norm_stats: str = "batch", seed: int | None = 0
    ) -> Image.Image:
        """Lab models: ab predicted from L at the network size, joined to the image's own full-size L."""
        rgb = image.convert("RGB")
        lightness, _ = image_to_lab_tensors(resize_for_inference(rgb, self.network_size(rgb.size)))
        ab = self.translate_tensor(lightness[None].to(self.device), dropout=dropout, norm_stats=norm_stats, seed=seed)
        ab = F.interpolate(ab.cpu().float(), size=(rgb.height, rgb.width), mode="bilinear", align_corners=False)
        full_lightness, _ = image_to_lab_tensors(rgb)  # (1, H, W): the output keeps the input's luminance
        return lab_tensors_to_image(full_lightness, ab[0])

    @torch.no_grad()
    def translate_tensor(
        self, batch: torch.Tensor, *, dropout: bool = True, norm_stats: str = "batch", seed: int | None = 0
    ) -> torch.Tensor:
        """(B, in, H, W) in [-1, 1] -> (B, out, H, W); H and W must be multiples of `stride`."""
        return run_for_inference(self.generator, batch, dropout=dropout, norm_stats=norm_stats, seed=seed)
