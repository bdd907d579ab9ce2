"""Typed run configuration: plain frozen dataclasses, their (de)serialisation and the values they allow.

A config is saved as JSON next to every checkpoint and inside it, so a run can be reproduced and a
checkpoint rebuilt without flags. Field names double as CLI flags (`base_channels` -> `--base-channels`),
and each field's one-line help (`option(default, help)`) is what `pix2pix train --help` shows for it.
Flags, recipes and saved configs are all built by `RunConfig.from_dict`, which checks every value's type
and range there, before any data is read, and refuses in one line naming the field, the value and what
is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Direction = Literal["AtoB", "BtoA"]
Preprocess = Literal["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"]
Norm = Literal["batch", "instance", "none"]
GeneratorName = Literal["unet", "unet_256", "unet_128", "encoder_decoder", "resnet_6blocks", "resnet_9blocks"]
DiscriminatorName = Literal["patch", "pixel"]
Upsample = Literal["transpose", "resize-conv"]
GanMode = Literal["vanilla", "lsgan", "hinge"]
ColorSpace = Literal["rgb", "lab"]
ModelName = Literal["pix2pix", "cyclegan"]
PrecisionName = Literal["auto", "fp32", "bf16", "fp16"]
Toggle = Literal["auto", "on", "off"]  # "auto": whatever suits the device


def other_direction(direction: str) -> Direction:
    """AtoB for BtoA and the reverse: a CycleGAN's second generator, or pairs laid out the other way."""
    return "BtoA" if direction == "AtoB" else "AtoB"


def option(default: Any, help: str) -> Any:
    """A config field with its one-line help: the text `--help` shows beside the flag (flags.py)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class DataConfig:
    """Where the pairs come from and how they are jittered (paper: resize to 286, crop 256, flip)."""

    data: str = option("builtin", "dataset root (ROOT/train, ROOT/val, ...), or 'builtin' for the generated facades")
    direction: Direction = option("AtoB", "AtoB translates the left half of each pair into the right; BtoA the reverse")
    preprocess: Preprocess = option(
        "resize_and_crop",
        "training jitter; resize_and_crop: resize to --load-size, then a random --crop-size crop; crop: random "
        "crops at the image's own scale",
    )
    load_size: int = option(286, "side the images are resized to before cropping")
    crop_size: int = option(256, "side of the random crops the networks train on")
    flip: bool = option(True, "random horizontal flips, the same for A and B")
    val_split: str = option(
        "val", "split whose first images give the sample grids and validation; only the default falls back to train"
    )
    color_space: ColorSpace = option(
        "rgb", "lab: colorization, L -> ab of the target photo; needs --in-channels 1 --out-channels 2"
    )
    num_workers: int = option(-1, "DataLoader worker processes; -1: chosen from the device and core count")


@dataclass(frozen=True)
class ModelConfig:
    """Networks of the paper's appendix; defaults are the official pix2pix ones."""

    model: ModelName = option(
        "pix2pix",
        "pix2pix: paired translation; cyclegan: unpaired (ROOT/trainA, ROOT/trainB), two generators and two "
        "discriminators (--config cyclegan: the CycleGAN paper's settings)",
    )
    in_channels: int = option(3, "input channels: 3 for RGB, 1 for grayscale")
    out_channels: int = option(3, "output channels: 3 for RGB, 1 for grayscale, 2 for ab with --color-space lab")
    generator: GeneratorName = option(
        "unet",
        "unet: a U-Net whose depth follows --crop-size: 8 downsamplings at 256, 7 at 128; encoder_decoder: "
        "the same network without its skip connections (the paper's ablation)",
    )
    base_channels: int = option(64, "generator width: channels of its first layer, ngf")
    norm: Norm = option("batch", "normalisation layers of the generator")
    dropout: bool = option(True, "dropout 0.5 in the generator's inner decoder blocks: the paper's noise")
    upsample: Upsample = option("transpose", "resize-conv: nearest-neighbour upsampling then a 3x3 convolution")
    discriminator: DiscriminatorName = option("patch", "patch: the PatchGAN; pixel: the 1x1 PixelGAN")
    disc_conditional: bool = option(
        True, "D sees the input beside the output (cGAN); --no-disc-conditional: the output only (the paper's GAN)"
    )
    disc_channels: int = option(64, "discriminator width: channels of its first layer, ndf")
    disc_layers: int = option(3, "PatchGAN depth; 3 gives the paper's 70x70 patches")
    disc_norm: Norm = option("batch", "normalisation layers of the discriminator")
    # opt-in upgrades of D, beyond the paper (docs/training.md#beyond-the-paper)
    disc_scales: int = option(1, "> 1: that many discriminators at image scales 1, 1/2, 1/4 (pix2pixHD)")
    disc_spectral_norm: bool = option(False, "spectral normalisation of every D convolution (Miyato et al.)")


@dataclass(frozen=True)
class LossConfig:
    gan: bool = option(True, "train against a discriminator; --no-gan: the L1-only U-Net baseline")
    gan_mode: GanMode = option("vanilla", "vanilla: BCE on logits; lsgan: least squares; hinge: the hinge loss")
    l1_weight: float = option(100.0, "weight of the L1 term (lambda); 0 gives the GAN-only objective")
    # opt-in upgrades, beyond the paper (docs/training.md#beyond-the-paper)
    feature_matching_weight: float = option(
        0.0, "> 0: weight of the L1 distance between D's features of real and generated pairs (pix2pixHD: 10)"
    )
    r1_weight: float = option(0.0, "> 0: gamma of the R1 gradient penalty on real pairs (Mescheder et al.)")
    diff_augment: str = option(
        "", "DiffAugment policy for what D sees, real and generated alike: color, translation, cutout, comma-separated"
    )
    # --model cyclegan only (Zhu et al. 2017)
    lambda_a: float = option(10.0, "cyclegan: weight of the cycle loss A -> B -> A")
    lambda_b: float = option(10.0, "cyclegan: weight of the cycle loss B -> A -> B")
    lambda_identity: float = option(
        0.5, "cyclegan: weight of the identity loss, relative to the cycle weights; 0 turns it off"
    )
    pool_size: int = option(50, "cyclegan: past generated images each discriminator also trains on; 0: none")


@dataclass(frozen=True)
class OptimConfig:
    lr: float = option(2e-4, "Adam learning rate of both networks")
    beta1: float = option(0.5, "Adam beta1")
    beta2: float = option(0.999, "Adam beta2")
    batch_size: int = option(1, "images per batch, per process under torchrun")
    n_epochs: int = option(100, "epochs at the initial learning rate")
    n_epochs_decay: int = option(100, "epochs of linear decay to zero after that")
    # opt-in upgrades, beyond the paper (docs/training.md#beyond-the-paper)
    disc_lr: float = option(0.0, "> 0: D's own Adam learning rate (the paper uses --lr for both)")
    ema_decay: float = option(
        0.0, "> 0: keep an exponential moving average of G's weights (e.g. 0.999); test, eval, export, serve use it"
    )

    @property
    def total_epochs(self) -> int:
        return self.n_epochs + self.n_epochs_decay

    @property
    def lr_d(self) -> float:
        return self.disc_lr or self.lr


@dataclass(frozen=True)
class TrainConfig:
    out: str = option("runs/pix2pix", "run folder: config, log, samples, checkpoints")
    seed: int = option(0, "seeds initialisation, shuffling, jitter and dropout")
    device: str = option("auto", "auto: cuda when available, else mps (Apple GPUs), else cpu; or cpu, mps, cuda:N")
    precision: PrecisionName = option(
        "auto", "auto: bf16 on CUDA GPUs with native bf16, else fp32; bf16 also on CPUs with native bf16; fp16: CUDA"
    )
    channels_last: Toggle = option("auto", "networks and batches in channels_last memory format; auto: on for CUDA")
    compile: bool = option(False, "torch.compile G and D for the training step")
    sync_bn: bool = option(
        False, "under torchrun on CUDA: batch norm statistics over the global batch, with SyncBatchNorm"
    )
    sample_every: int = option(5, "epochs between sample grids")
    save_every: int = option(5, "epochs between checkpoints; the last epoch is always saved")
    save_every_iters: int = option(0, "> 0: also refresh latest.pt every this many iterations, for long epochs")
    keep_checkpoints: int = option(3, "epoch_*.pt files kept (the newest ones); 0 keeps all")
    nan_retries: int = option(
        0, "> 0: on a NaN/inf loss, go back to the last checkpoint with the lr halved, this often"
    )
    skip_bad: bool = option(
        False, "skip unreadable pairs (CycleGAN: images) found by the start-up check instead of refusing to start"
    )
    num_samples: int = option(4, "validation images in each sample grid")
    val_every: int = option(
        0,
        "> 0: every this many epochs measure L1/PSNR/SSIM on --val-split (CycleGAN: its cycle losses, and "
        "L1/PSNR/SSIM where its A and B images are counterparts); needs the eval extra",
    )
    best_metric: Literal["l1", "psnr", "ssim"] = option("ssim", "the validation metric that picks best.pt")
    tensorboard: bool = option(
        True, "TensorBoard logs in RUN/tensorboard; needs the tensorboard extra, else log.csv only"
    )


def section_type(section: dataclasses.Field[Any]) -> type[DataclassInstance]:
    """The dataclass of one RunConfig section: each section is `field(default_factory=<that dataclass>)`."""
    factory = section.default_factory
    assert isinstance(factory, type) and dataclasses.is_dataclass(factory), f"{section.name}: not a config section"
    return factory


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
        """Build from nested dicts; missing fields take defaults. Unknown names, values of the wrong type
        or out of range, and fields that contradict each other are a ValueError naming them."""
        if not is_sections(sections):
            raise ValueError("a config is a dict of sections (data, model, loss, optim, train), each a dict of fields")
        unknown_sections = sorted(set(sections) - {section.name for section in dataclasses.fields(cls)})
        if unknown_sections:
            raise ValueError(f"unknown config section(s): {', '.join(unknown_sections)}")
        built = {}
        for section in dataclasses.fields(cls):
            built[section.name] = build_section(section.name, section_type(section), sections.get(section.name, {}))
        config = cls(**built)
        check_combinations(config)
        return config

    def save_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        """Read a `.json` (as saved beside checkpoints) or a `.toml` recipe."""
        return cls.from_dict(read_sections(path))

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
        """A copy with `changes` in `section`, unchecked (a change may need a second one to make sense:
        crop_size, then load_size); `checked` or training checks the result."""
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})

    def checked(self) -> RunConfig:
        """This config through `from_dict`'s checks, which one built or `replace`d in Python has skipped."""
        return RunConfig.from_dict(self.to_dict())


def is_sections(sections: object) -> bool:
    return isinstance(sections, dict) and all(isinstance(values, dict) for values in sections.values())


def read_sections(path: Path) -> dict[str, dict[str, Any]]:
    """The sections of a `.json` or `.toml` config file as written, before defaults and checks."""
    text = Path(path).read_text()
    try:
        sections = tomllib.loads(text) if Path(path).suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a valid config file ({error})") from error
    if not is_sections(sections):
        raise ValueError(f"{path}: not a valid config file (expected sections [data] [model] [loss] [optim] [train])")
    return sections


AUGMENTATIONS = ("color", "translation", "cutout")  # DiffAugment's transforms (training/augment.py)
Rule = tuple[Callable[[Any], bool], str]  # (does a value of the field's type fit, what is allowed)


def at_least(low: int) -> Rule:
    return (lambda value: value >= low), f">= {low}"


def between(low: int, high: int) -> Rule:
    """Sizes and counts that allocate: a huge value would fail late, deep in torch, with a traceback."""
    return (lambda value: low <= value <= high), f"from {low} to {high}"


FRACTION: Rule = ((lambda value: 0 <= value < 1), "in [0, 1)")

# What a field allows beyond its type; a field without a rule takes any value of its type.
RULES: dict[str, Rule] = {
    "data.load_size": between(1, 16384),
    "data.crop_size": between(1, 16384),
    "data.num_workers": between(-1, 256),
    "model.in_channels": ((lambda value: value in (1, 3)), "1 or 3"),
    "model.out_channels": ((lambda value: value in (1, 2, 3)), "1, 2 (color_space lab) or 3"),
    "model.base_channels": between(1, 4096),
    "model.disc_channels": between(1, 4096),
    "model.disc_layers": between(1, 16),
    "model.disc_scales": between(1, 4),
    "loss.l1_weight": at_least(0),
    "loss.feature_matching_weight": at_least(0),
    "loss.r1_weight": at_least(0),
    "loss.lambda_a": at_least(0),
    "loss.lambda_b": at_least(0),
    "loss.lambda_identity": at_least(0),
    "loss.pool_size": between(0, 4096),
    "loss.diff_augment": (
        (lambda value: value == "" or set(value.split(",")) <= set(AUGMENTATIONS)),
        "empty or a comma-separated list of " + ", ".join(AUGMENTATIONS),
    ),
    "optim.lr": ((lambda value: value > 0), "> 0"),
    "optim.beta1": FRACTION,
    "optim.beta2": FRACTION,
    "optim.batch_size": between(1, 4096),
    "optim.n_epochs": at_least(0),
    "optim.n_epochs_decay": at_least(0),
    "optim.disc_lr": ((lambda value: value >= 0), ">= 0 (0: the same as lr)"),
    "optim.ema_decay": FRACTION,
    "train.out": ((lambda value: value != ""), "naming a folder"),
    "train.seed": ((lambda value: 0 <= value < 2**64), "from 0 to 2**64 - 1"),  # torch.manual_seed takes no more
    "train.device": (
        (lambda value: re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value) is not None),
        "naming a device: auto, cpu, mps, cuda or cuda:N",
    ),
    "train.sample_every": at_least(1),
    "train.save_every": at_least(1),
    "train.save_every_iters": at_least(0),
    "train.keep_checkpoints": at_least(0),
    "train.nan_retries": at_least(0),
    "train.num_samples": between(1, 64),
    "train.val_every": at_least(0),
}

TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}


def build_section(name: str, section_type: Any, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(section_type)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ValueError(f"unknown option(s) in [{name}]: {', '.join(unknown)}")
    for key, value in values.items():
        fits, allowed = RULES.get(f"{name}.{key}", ((lambda _: True), ""))
        if not (has_type(value, hints[key]) and fits(value)):
            expected = " ".join(filter(None, [describe_type(hints[key]), allowed]))
            raise ValueError(f"{name}.{key} = {show(value)}: must be {expected}")
    # an int given for a float (`lr = 1`) is stored as the float it stands for
    return section_type(**{key: float(value) if hints[key] is float else value for key, value in values.items()})


def has_type(value: Any, hint: Any) -> bool:
    if typing.get_origin(hint) is Literal:
        return isinstance(value, str) and value in typing.get_args(hint)
    if isinstance(value, bool) != (hint is bool):  # True is an int to Python, but not to a config
        return False
    if hint is float:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, hint)


def describe_type(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(show(choice) for choice in typing.get_args(hint))
    return TYPE_NAMES[hint]


def show(value: Any) -> str:
    """A value as a recipe spells it (`"no"`, `true`, `1.5`)."""
    return json.dumps(value, default=str)


# Crops must be a multiple of the generator's stride; "unet" and "encoder_decoder" derive their depth from
# crop_size (at least 5 halvings).
GENERATOR_STRIDES = {
    "unet": 32,
    "unet_256": 256,
    "unet_128": 128,
    "encoder_decoder": 32,
    "resnet_6blocks": 4,
    "resnet_9blocks": 4,
}
SIZE_DERIVED_DEPTH = ("unet", "encoder_decoder")
CROPPING = ("resize_and_crop", "crop", "scale_width_and_crop")


def check_combinations(config: RunConfig) -> None:
    """The rules between fields; each refusal names the field to change."""
    data, model, loss, optim = config.data, config.model, config.loss, config.optim
    crops = data.preprocess in CROPPING
    stride = GENERATOR_STRIDES[model.generator]
    # the patch discriminator halves the crop disc_layers times; its last two 4x4 convs need 3 px left, at
    # the coarsest of its scales
    max_disc_layers = (data.crop_size // 2 ** (model.disc_scales - 1) // 3).bit_length() - 1
    rules = [
        (
            optim.total_epochs >= 1,
            "optim.n_epochs = 0, optim.n_epochs_decay = 0: one of them must be >= 1 (else no epoch is trained)",
        ),
        (
            data.crop_size <= data.load_size or data.preprocess not in ("resize_and_crop", "scale_width_and_crop"),
            f"data.crop_size = {data.crop_size}: must be <= data.load_size ({data.load_size}) with preprocess "
            f"{show(data.preprocess)}, which resizes to load_size and then crops",
        ),
        (
            data.crop_size % stride == 0 or not (crops or model.generator in SIZE_DERIVED_DEPTH),
            f"data.crop_size = {data.crop_size}: must be a multiple of {stride} for generator {show(model.generator)}",
        ),
        (
            model.disc_layers <= max_disc_layers or not (loss.gan and model.discriminator == "patch" and crops),
            f"model.disc_layers = {model.disc_layers}: must be <= {max_disc_layers} for crop_size {data.crop_size}"
            + (f" and disc_scales {model.disc_scales}" if model.disc_scales > 1 else ""),
        ),
        (
            loss.gan or not (loss.feature_matching_weight or loss.r1_weight or loss.diff_augment),
            "loss.gan = false: feature_matching_weight, r1_weight and diff_augment need a discriminator",
        ),
        (
            (model.in_channels, model.out_channels) == (1, 2) or data.color_space != "lab",
            f'data.color_space = "lab": needs in_channels 1 and out_channels 2 (L -> ab), '
            f"got {model.in_channels} and {model.out_channels}",
        ),
        (
            model.out_channels != 2 or data.color_space == "lab",
            'model.out_channels = 2: must be 1 or 3 unless data.color_space is "lab"',
        ),
        (
            loss.l1_weight > 0 or loss.gan,
            f"loss.l1_weight = {loss.l1_weight}: must be > 0 when loss.gan is false "
            "(nothing else would train the generator)",
        ),
    ]
    if model.model == "cyclegan":
        rules += cyclegan_rules(config)
    for holds, message in rules:
        if not holds:
            raise ValueError(message)


def cyclegan_rules(config: RunConfig) -> list[tuple[bool, str]]:
    """What `--model cyclegan` (training/cycle_loop.py) cannot do: pix2pix's upgrades and its paired-only
    parts are refused rather than ignored, so a recipe never trains other than it reads."""
    data, model, loss = config.data, config.model, config.loss
    unsupported = [
        name
        for name, is_set in (
            ("loss.feature_matching_weight", loss.feature_matching_weight > 0),
            ("loss.r1_weight", loss.r1_weight > 0),
            ("loss.diff_augment", loss.diff_augment != ""),
            ("optim.ema_decay", config.optim.ema_decay > 0),
        )
        if is_set
    ]
    return [
        (
            not unsupported,
            f'model.model = "cyclegan": {", ".join(unsupported)} work with pix2pix only; leave them at their defaults',
        ),
        (loss.gan, 'loss.gan = false: model "cyclegan" trains against its two discriminators'),
        (
            loss.gan_mode != "hinge",
            'loss.gan_mode = "hinge": model "cyclegan" takes "lsgan" (the paper\'s) or "vanilla"',
        ),
        (
            not model.disc_conditional,
            "model.disc_conditional = true: a CycleGAN discriminator sees one image, never a pair; set it false "
            "(--no-disc-conditional, or --config cyclegan for the paper's settings)",
        ),
        (data.color_space == "rgb", 'data.color_space = "lab": model "cyclegan" translates rgb or grayscale images'),
        (
            loss.lambda_identity == 0 or model.in_channels == model.out_channels,
            f"loss.lambda_identity = {loss.lambda_identity}: the identity loss needs in_channels = out_channels "
            f"(got {model.in_channels} and {model.out_channels}); set it to 0",
        ),
    ]
