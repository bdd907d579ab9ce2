"""Typed run configuration. Plain frozen dataclasses, no logic beyond (de)serialisation.

A config is saved as JSON next to every checkpoint and inside it, so a run can be reproduced and a
checkpoint rebuilt without flags. Field names double as CLI flags (`base_channels` -> `--base-channels`).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Direction = Literal["AtoB", "BtoA"]
Preprocess = Literal["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"]
Norm = Literal["batch", "instance", "none"]
GeneratorName = Literal["unet", "unet_256", "unet_128", "resnet_6blocks", "resnet_9blocks"]
DiscriminatorName = Literal["patch", "pixel"]
Upsample = Literal["transpose", "resize-conv"]
GanMode = Literal["vanilla", "lsgan"]
ColorSpace = Literal["rgb", "lab"]
PrecisionName = Literal["auto", "fp32", "bf16", "fp16"]
Toggle = Literal["auto", "on", "off"]  # "auto": whatever suits the device


@dataclass(frozen=True)
class DataConfig:
    """Where the pairs come from and how they are jittered (paper: resize to 286, crop 256, flip)."""

    data: str = "builtin"  # dataset root, or "builtin" for the procedurally generated facades
    direction: Direction = "AtoB"
    preprocess: Preprocess = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    val_split: str = "val"  # folder whose first images give the sample grids; falls back to train
    color_space: ColorSpace = "rgb"  # "lab": colorization, L -> ab of the target photo (in 1, out 2 channels)
    num_workers: int = -1  # -1: chosen from the device and core count


@dataclass(frozen=True)
class ModelConfig:
    """Networks of the paper's appendix; defaults are the official pix2pix ones."""

    in_channels: int = 3
    out_channels: int = 3
    generator: GeneratorName = "unet"  # "unet": depth derived from crop_size (256 -> 8 downsamplings)
    base_channels: int = 64  # ngf
    norm: Norm = "batch"
    dropout: bool = True
    upsample: Upsample = "transpose"
    discriminator: DiscriminatorName = "patch"
    disc_channels: int = 64  # ndf
    disc_layers: int = 3  # 3 -> the 70x70 PatchGAN
    disc_norm: Norm = "batch"


@dataclass(frozen=True)
class LossConfig:
    gan: bool = True  # --no-gan: the L1-only U-Net baseline (no discriminator is trained)
    gan_mode: GanMode = "vanilla"
    l1_weight: float = 100.0  # lambda; 0 gives the GAN-only objective


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 1
    n_epochs: int = 100  # epochs at the initial learning rate
    n_epochs_decay: int = 100  # epochs of linear decay to zero after that


@dataclass(frozen=True)
class TrainConfig:
    out: str = "runs/pix2pix"
    seed: int = 0
    device: str = "auto"  # auto: cuda when available, else cpu
    precision: PrecisionName = "auto"  # auto: bf16 on CUDA GPUs with native bf16, else fp32; bf16/fp16 need CUDA
    channels_last: Toggle = "auto"  # networks and batches in channels_last memory format; auto: on for CUDA only
    compile: bool = False  # torch.compile G and D for the training step
    sync_bn: bool = False  # under DDP on CUDA: batch norm statistics over the global batch (SyncBatchNorm)
    sample_every: int = 5  # epochs between sample grids
    save_every: int = 5  # epochs between checkpoints (the last epoch is always saved)
    save_every_iters: int = 0  # > 0: also refresh latest.pt every this many iterations (long epochs)
    keep_checkpoints: int = 3  # epoch_*.pt files kept (the newest ones); 0 keeps all
    nan_retries: int = 0  # > 0: on a NaN/inf loss, go back to the last checkpoint with the lr halved, this often
    skip_bad: bool = False  # skip unreadable pairs found by the start-up check instead of refusing to start
    num_samples: int = 4  # validation images in each sample grid
    val_every: int = 0  # > 0: every this many epochs measure L1/PSNR/SSIM on the val split (needs [eval])
    best_metric: Literal["l1", "psnr", "ssim"] = "ssim"  # which validation metric picks best.pt
    tensorboard: bool = True


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, sections: dict[str, dict[str, Any]]) -> RunConfig:
        """Build from nested dicts; missing fields take defaults, unknown ones are an error."""
        built = {}
        for section in dataclasses.fields(cls):
            section_type = section.default_factory  # type: ignore[misc]
            values = dict(sections.get(section.name, {}))
            known = {f.name for f in dataclasses.fields(section_type)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(f"unknown option(s) in [{section.name}]: {', '.join(unknown)}")
            built[section.name] = section_type(**values)
        unknown_sections = sorted(set(sections) - set(built))
        if unknown_sections:
            raise ValueError(f"unknown config section(s): {', '.join(unknown_sections)}")
        return cls(**built)

    def save_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        """Read a `.json` (as saved beside checkpoints) or a `.toml` recipe."""
        text = Path(path).read_text()
        try:
            sections = tomllib.loads(text) if str(path).endswith(".toml") else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not a valid config file ({error})") from error
        return cls.from_dict(sections)

    def differences(self, other: RunConfig, sections: tuple[str, ...] = ()) -> list[str]:
        """`section.field: other's value -> this one's` for each field that differs (in `sections`, or all)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [
            f"{section}.{name}: {theirs[section][name]!r} -> {value!r}"
            for section in sections or mine
            for name, value in mine[section].items()
            if value != theirs[section][name]
        ]

    def replace(self, section: str, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})
