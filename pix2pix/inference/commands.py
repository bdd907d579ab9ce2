"""`pix2pix models list|download`: the generators the paper's authors released (pix2pix.inference.pretrained),
without importing torch."""

from __future__ import annotations

import argparse

from pix2pix.inference.pretrained import (
    PRETRAINED,
    URL_VARIABLE,
    cached_path,
    digest_path,
    download_pretrained,
    models_url,
)


def add_models_command(commands: argparse._SubParsersAction) -> None:
    """Register `pix2pix models ...` on the CLI's subparsers."""
    models = commands.add_parser("models", help="list and download the generators released with the paper")
    actions = models.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", help="each model's task, direction and input, and whether it is cached")
    listing.set_defaults(run=run_list)

    download = actions.add_parser(
        "download", help=f"download a model into the cache (from ${URL_VARIABLE} or the official model server)"
    )
    download.add_argument("name", choices=list(PRETRAINED))
    download.add_argument("--force", action="store_true", help="download again, replacing the cached file")
    download.add_argument("--quiet", action="store_true", help="no progress bar")
    download.set_defaults(run=run_download)


def run_list(args: argparse.Namespace) -> None:
    print(f"pretrained models (use as --checkpoint pretrained:NAME; source {models_url()}):")
    for model in PRETRAINED.values():
        path = cached_path(model.name)
        cached = f"cached at {path}" if digest_path(path).exists() else "not downloaded"
        source = f"{model.direction} of {model.dataset}, {model.size} px"
        print(f"  {model.name:<20} {model.task:<26} {source:<28} {cached}")
        print(f"  {'':<20} input: {model.expects}")


def run_download(args: argparse.Namespace) -> None:
    path = download_pretrained(args.name, progress=not args.quiet, force=args.force)
    print(f"{args.name}: {path} (SHA-256 recorded in {digest_path(path).name}, checked on every load)")
