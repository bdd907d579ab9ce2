"""Training flags generated from the config dataclasses, and the recipe lookup behind `--config`.

Every field `name` is `--name` (underscores become dashes, booleans get `--name/--no-name`). Flags
override a `--config` recipe (or, for `train --resume`, the run's saved config), which overrides the
defaults. Used by `train` and `summary`.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from importlib import resources
from pathlib import Path
from typing import Any

from pix2pix.config import RunConfig, read_sections, section_type
from pix2pix.inference.translator import RUNTIMES

RECIPES = "pix2pix.recipes"


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field, with the field's help; default SUPPRESS so only flags the user gave
    override the recipe."""
    for section in dataclasses.fields(RunConfig):
        group = parser.add_argument_group(section.name)
        section_class = section_type(section)
        hints = typing.get_type_hints(section_class)
        for field in dataclasses.fields(section_class):
            flag = "--" + field.name.replace("_", "-")
            kind = hints[field.name]
            # argparse %-formats help strings: a literal % in a field's help must reach it as %%
            help_text = f"{field.metadata['help']} (default: {field.default})".replace("%", "%%")
            if kind is bool:
                group.add_argument(
                    flag,
                    dest=field.name,
                    action=argparse.BooleanOptionalAction,
                    default=argparse.SUPPRESS,
                    help=help_text,
                )
            elif typing.get_origin(kind) is typing.Literal:
                group.add_argument(
                    flag, dest=field.name, choices=typing.get_args(kind), default=argparse.SUPPRESS, help=help_text
                )
            else:
                group.add_argument(flag, dest=field.name, type=kind, default=argparse.SUPPRESS, help=help_text)


def add_config_option(parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup) -> None:
    """`--config`: the recipe that `build_config` reads before the flags."""
    parser.add_argument("--config", help=f"a .toml/.json config or a built-in recipe: {', '.join(recipe_names())}")


def recipe_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in resources.files(RECIPES).iterdir() if p.name.endswith(".toml"))


def build_config(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """Defaults <- `base` (a resumed run's saved config) or the recipe (a file or a built-in recipe name:
    it replaces `base`) <- command-line flags.

    A new `--model cyclegan` run without a recipe starts from the `cyclegan` recipe (the CycleGAN paper's
    settings): the defaults are pix2pix's, whose conditional discriminator CycleGAN cannot use."""
    sections: dict[str, dict[str, Any]] = base.to_dict() if base else {}
    recipe = args.config
    if not recipe and base is None and vars(args).get("model") == "cyclegan":
        recipe = "cyclegan"
    if recipe:
        path = Path(recipe)
        if not path.exists() and recipe in recipe_names():
            path = Path(str(resources.files(RECIPES) / f"{recipe}.toml"))
        if not path.exists():
            raise FileNotFoundError(f"{recipe}: no such config file or built-in recipe ({', '.join(recipe_names())})")
        sections = read_sections(path)  # checked below, once the flags that override it are in
    given = vars(args)
    for section in dataclasses.fields(RunConfig):
        for field in dataclasses.fields(section_type(section)):
            if field.name in given:
                sections.setdefault(section.name, {})[field.name] = given[field.name]
    return RunConfig.from_dict(sections)


def add_runtime_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="auto",
        help="auto: onnxruntime on a CPU when installed (1.3-2.3x eager PyTorch by CPU) for the deterministic mode "
        "and, one image at a time, the paper's protocol; torch for dropout with running stats (default: auto)",
    )


def add_reverse_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reverse", action="store_true", help="a CycleGAN run: translate B -> A with its second generator"
    )


OWN_MODE = "; an .onnx export: the mode it was exported in"  # the help of a flag left to the model


def add_test_time_flags(
    parser: argparse.ArgumentParser, *, dropout: str | None = None, norm_stats: str | None = None
) -> None:
    """The two independent test-time switches. Left without a default (test, eval), a flag not given is
    the model's own: the paper's protocol for a checkpoint, the exported mode for an .onnx file
    (`ImageTranslator.mode_or_default`); serve and export fix the deterministic mode instead."""
    parser.add_argument(
        "--dropout", choices=("on", "off"), default=dropout, help=f"dropout (default: {dropout or 'on' + OWN_MODE})"
    )
    parser.add_argument(
        "--norm-stats",
        choices=("batch", "running"),
        default=norm_stats,
        help="batch norm statistics: of the image itself, or the running averages "
        f"(default: {norm_stats or 'batch' + OWN_MODE})",
    )


def dropout_flag(args: argparse.Namespace) -> bool | None:
    """--dropout as a bool, None where it was left to the model (`add_test_time_flags`)."""
    return None if args.dropout is None else args.dropout == "on"
