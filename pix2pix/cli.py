"""`pix2pix ...`: parse flags into a config, then call one function."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import typing
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from pix2pix import __version__
from pix2pix.config import Norm, RunConfig
from pix2pix.data.tools.commands import add_data_command
from pix2pix.evaluate.commands import add_eval_command, add_summary_command
from pix2pix.export_commands import add_export_command
from pix2pix.extras import OPTIONAL_EXTRAS, require_packages
from pix2pix.flags import (
    add_config_flags,
    add_config_option,
    add_reverse_flag,
    add_runtime_flag,
    add_test_time_flags,
    build_config,
    dropout_flag,
)
from pix2pix.inference.commands import add_models_command
from pix2pix.runtime import tune_process_for_cli
from pix2pix.serve.commands import add_serve_command

# Exit codes: 0 success; 1 a failure while running (a full disk, a non-finite loss); 2 the command cannot
# run as given (argparse's own code for bad flags); 75 a training run that stopped on request, checkpointed
# and resumable: sysexits.h's EX_TEMPFAIL ("try again later"), so a pre-empted cluster job is not a success.
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_RESUMABLE = 75
EXIT_INTERRUPTED = 130  # a second Ctrl-C: stopped at once (128 + SIGINT, as shells report it)


def run_train(args: argparse.Namespace) -> int | None:
    try:
        # from the first moment the command runs: importing torch alone takes about a second
        with sigterm_stops_start_up():  # until the training loop takes the signal over, and after it
            return train_and_report(args)
    except StoppedDuringStartUp:
        print(
            "stopped outside the training loop (starting up or closing): no training was lost; run the command"
            " again (with --resume auto once the run has checkpoints)"
        )
        return EXIT_RESUMABLE


def train_and_report(args: argparse.Namespace) -> int | None:
    # late: fast --help
    from pix2pix.training.cycle_loop import fit_cyclegan
    from pix2pix.training.loop import TrainingInterrupted, TrainingStopped, fit, resumed_config

    config = build_config(args)
    if args.resume and not args.config:  # a resumed run keeps its own settings; flags change them
        saved = resumed_config(args.resume, Path(config.train.out))
        config = build_config(args, base=saved)
        if config.model.model != saved.model.model:  # not a change of a run: another kind of training
            raise ValueError(
                f"--resume {args.resume}: a {saved.model.model} run, which --model {config.model.model} cannot "
                "continue; resume it without --model, or start a new run with another --out"
            )
        changes = config.differences(saved)
        if changes and os.environ.get("RANK", "0") == "0":
            print(f"resuming {config.train.out} with changes: {'; '.join(changes)}")
    check_packages_for(config)
    train = fit_cyclegan if config.model.model == "cyclegan" else fit
    try:
        run_dir = train(config, resume=args.resume, progress=not args.quiet)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, one process reports
            print(f"run folder: {run_dir}")
            if args.report:
                write_report(config, run_dir, progress=not args.quiet)
    except TrainingInterrupted as stopped:
        print(stopped)  # the run is checkpointed and says how to resume; the exit code says it is not done
        return EXIT_RESUMABLE
    except TrainingStopped as failed:
        print(f"pix2pix train: error: {failed}", file=sys.stderr)
        return EXIT_FAILURE
    return None


def write_report(config: RunConfig, run_dir: Path, *, progress: bool) -> None:
    """`train --report`: the finished run's translations of a held-out split, as an HTML page."""
    from pix2pix.inference.folders import translate_to_folder
    from pix2pix.inference.formats import load_model

    data_root, split, folder, held_out = report_input(config)
    page = translate_to_folder(load_model(run_dir), data_root, run_dir / folder, split=split, progress=progress)
    seen = "" if held_out else " (images it trained on: not a held-out result)"
    print(f"translations of the {folder} split{seen}: {page}")


class StoppedDuringStartUp(BaseException):
    """SIGTERM while a run starts (data checks, building the networks) or closes. A BaseException, as
    KeyboardInterrupt is for Ctrl-C, so that no `except Exception` on the way swallows it."""


@contextlib.contextmanager
def sigterm_stops_start_up() -> Iterator[None]:
    """SIGTERM stops a starting run with the resumable exit code, as it does a training one, not with the
    signal's default death (143) that a cluster reads as a crash."""

    def stop(signum: int, frame: object) -> None:
        raise StoppedDuringStartUp

    if threading.current_thread() is not threading.main_thread():  # signals only reach the main thread
        yield
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def report_input(config: RunConfig) -> tuple[Path, str, str, bool]:
    """What `train --report` translates: (dataset root, split, the folder of inputs, whether it is held
    out). A held-out split if there is one; the training images only as a last resort, and said so.
    A CycleGAN run translates its source domain's folder (SPLITA, or SPLITB with --direction BtoA)."""
    from pix2pix.data.builtin import resolve_data_root, resolve_unpaired_root

    if config.model.model == "cyclegan":
        data_root = resolve_unpaired_root(config.data.data)
        domain = "A" if config.data.direction == "AtoB" else "B"
        held_out = held_out_split(config, lambda name: (data_root / f"{name}{domain}").is_dir())
        split = held_out or "train"
        return data_root / f"{split}{domain}", split, f"{split}{domain}", held_out is not None
    data_root = resolve_data_root(config.data.data)
    held_out = held_out_split(config, lambda name: (data_root / name).is_dir())
    split = held_out or "train"
    return data_root, split, split, held_out is not None


def held_out_split(config: RunConfig, exists: Callable[[str], bool]) -> str | None:
    """The validation split, else test, if `exists` says the dataset has it (never train)."""
    return next((name for name in (config.data.val_split, "test") if name != "train" and exists(name)), None)


def check_packages_for(config: RunConfig) -> None:
    """Refuse at start, not an epoch in, a config that needs an optional package this install lacks.
    (A missing tensorboard only warns, when the run opens its logs: log.csv has the same numbers.)"""
    needs: list[tuple[str, str, str]] = []  # (module, the extra that installs it, what needs it)
    if config.train.val_every > 0:
        needs.append(("skimage", "eval", f"--val-every {config.train.val_every} (validation PSNR and SSIM)"))
    if config.data.color_space == "lab":
        needs.append(("skimage", "data", "--color-space lab (the sRGB <-> Lab conversion)"))
    require_packages(needs)


def run_test(args: argparse.Namespace) -> None:
    from pix2pix.data.builtin import resolve_data_root
    from pix2pix.inference.folders import translate_to_folder
    from pix2pix.inference.formats import load_model

    if args.samples < 1:
        raise ValueError(f"--samples must be at least 1, got {args.samples}")
    model = load_model(
        args.checkpoint, device=args.device, netg=args.netg, norm=args.norm, runtime=args.runtime, reverse=args.reverse
    )
    dropout, norm_stats = model.mode_or_default(dropout_flag(args), args.norm_stats)
    runtime = model.runtime_for(dropout=dropout, norm_stats=norm_stats)
    input_path = resolve_data_root(args.input) if args.input == "builtin" else Path(args.input)
    page = translate_to_folder(
        model,
        input_path,
        Path(args.output),
        split=args.split,
        paired=args.paired,
        dropout=dropout,
        norm_stats=norm_stats,
        seed=args.seed,
        samples=args.samples,
        progress=not args.quiet,
    )
    print(f"wrote {page} ({runtime})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pix2pix", description="Paired image-to-image translation (Isola et al. 2017)."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print INFO lines: the run folder, device and pairs, the checkpoint resumed from",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model (no --data: the built-in synthetic facades)")
    add_config_option(train)
    train.add_argument(
        "--resume",
        help="checkpoint or run folder to continue, or 'auto' for --out's latest; the run keeps the settings it "
        "was saved with, and flags given here change them",
    )
    train.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after training, translate the validation split (else test, else train) into RUN/SPLIT/index.html",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bars, epoch lines or warnings (errors only)")
    add_config_flags(train)
    train.set_defaults(run=run_train)

    test = commands.add_parser("test", help="translate images with a trained model")
    test.add_argument("--checkpoint", required=True, help="run folder, checkpoint file, or official latest_net_G.pth")
    test.add_argument(
        "--input",
        required=True,
        help="a folder of images, an image, a dataset split folder (with --paired or A/ B/), "
        "a dataset root (uses --split), or 'builtin'",
    )
    test.add_argument("--output", required=True, help="folder for the translations and index.html")
    test.add_argument("--split", default="test", help="split to use when --input is a dataset root (default: test)")
    test.add_argument("--paired", action="store_true", help="--input holds side-by-side A|B pairs; shows targets")
    add_test_time_flags(test)  # default: the model's own (the paper's protocol for a checkpoint)
    add_runtime_flag(test)
    add_reverse_flag(test)
    test.add_argument("--seed", type=int, default=0, help="seed of the dropout draws")
    test.add_argument("--samples", type=int, default=1, help="dropout samples per input")
    test.add_argument("--device", default="auto")
    test.add_argument("--netg", help="official checkpoints only: netG name, if it cannot be inferred")
    test.add_argument("--norm", choices=typing.get_args(Norm), help="official checkpoints only: norm")
    test.add_argument("--quiet", action="store_true", help="no progress bar or warnings (errors only)")
    test.set_defaults(run=run_test)

    # further command groups register themselves here, one line each
    add_export_command(commands)
    add_serve_command(commands)
    add_data_command(commands)
    add_eval_command(commands)
    add_summary_command(commands)
    add_models_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    tune_process_for_cli()  # before anything imports torch: a program may tune its process, a library not
    args = build_parser().parse_args(argv)
    # a command's --quiet leaves only errors; it wins over --verbose
    level = logging.ERROR if getattr(args, "quiet", False) else logging.INFO if args.verbose else logging.WARNING
    if os.environ.get("RANK", "0") != "0":  # under torchrun the other processes would repeat rank 0's lines
        level = max(level, logging.ERROR)
    # one line per warning, like the errors (not Python's "file:line: UserWarning:" plus a source line)
    python_format = warnings.formatwarning
    warnings.formatwarning = lambda message, *_: f"pix2pix {args.command}: warning: {message}\n"
    try:
        with printed_logs(args.command, level):
            return run_command(args)
    finally:
        warnings.formatwarning = python_format


class CommandFormatter(logging.Formatter):
    """`pix2pix CMD: warning: MESSAGE`, the form of the command's errors and warnings; INFO as it is."""

    def __init__(self, command: str):
        super().__init__()
        self.command = command

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno < logging.WARNING:
            return message
        return f"pix2pix {self.command}: {record.levelname.lower()}: {message}"


@contextlib.contextmanager
def printed_logs(command: str, level: int) -> Iterator[None]:
    """The `pix2pix` loggers' records at `level` and above, printed to stderr while the command runs.

    Undone afterwards, so a program or test that calls main() several times gets one line per event, never
    one per call so far. Records still propagate to the root logger, where a host program may route them.
    """
    logger = logging.getLogger("pix2pix")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(CommandFormatter(command))
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


# What the command line got wrong: a bad value (ValueError: the config checks, unusable data, a refused
# --out), or a path it names that is missing, already taken or the wrong kind. Any other OSError (no
# permission, a full disk, a read-only or failing file system, the network) happened to the run instead.
USAGE_ERRORS = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; an expected failure becomes one `pix2pix CMD: error:` line and its exit code."""
    try:
        code = args.run(args)  # a command returns its exit code, or None for success
    except (ValueError, OSError) as error:
        if os.environ.get("PIX2PIX_DEBUG"):
            raise
        print(f"pix2pix {args.command}: error: {describe_error(error)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, USAGE_ERRORS) else EXIT_FAILURE
    except ModuleNotFoundError as error:
        extra = OPTIONAL_EXTRAS.get((error.name or "").split(".")[0])
        if extra is None or os.environ.get("PIX2PIX_DEBUG"):
            raise
        print(f"pix2pix {args.command}: error: needs {error.name}: pip install 'pix2pix[{extra}]'", file=sys.stderr)
        return EXIT_USAGE  # as check_packages_for's refusals: this install cannot run the command as given
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code or 0


def describe_error(error: Exception) -> str:
    """`PATH: reason` for an error of the operating system (not Python's `[Errno 17] File exists: 'PATH'`)."""
    # mkdir's refusal names the file in the way (a rename's or a link's names two paths, and is not this)
    if isinstance(error, FileExistsError) and error.filename2 is None and Path(error.filename or "").is_file():
        return f"{error.filename} is a file, so it cannot be the folder the output goes in"
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename is not None else error.strerror
    return str(error)
