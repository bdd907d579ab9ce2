"""Faults never cost a run: signals, kills, non-finite losses, damaged checkpoints, bad images."""

import csv
import errno
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pix2pix.training.loop as loop
from pix2pix.checkpoint import load_checkpoint, read_checkpoint_file, resolve_checkpoint
from pix2pix.cli import main
from pix2pix.data.tools.check import check_dataset
from pix2pix.networks import build_generator_for
from pix2pix.training.loop import TrainingInterrupted, TrainingStopped, fit
from pix2pix.training.step import train_step
from tests.helpers import TINY_FLAGS, TINY_FLAGS_WITH_WARNINGS, logged, tiny_config, write_pairs


def read_rows(run):
    with (run / "log.csv").open() as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def call_after(count: int, action):
    """A train_step that runs `action` (with the step's arguments) on its `count`-th call."""
    calls = {"n": 0}

    def step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == count:
            args = action(*args) or args
        return train_step(*args, **kwargs)

    return step


def has_dropout(run) -> bool:
    state, config = load_checkpoint(run)
    return any(isinstance(m, torch.nn.Dropout) for m in build_generator_for(config).modules())


# the U-Net has dropout from 64 px on
@pytest.mark.parametrize("size", [32, pytest.param(64, marks=pytest.mark.slow)], ids=["no-dropout", "dropout"])
def test_sigterm_mid_epoch_checkpoints_and_resume_matches_an_uninterrupted_run(
    tiny_dataset, tmp_path, monkeypatch, size
):
    config = tiny_config(tiny_dataset, tmp_path / "full").replace("optim", n_epochs=2, n_epochs_decay=1)
    config = config.replace("data", load_size=size, crop_size=size)
    full = fit(config, progress=False)
    assert has_dropout(full) == (size >= 64)

    stopped = config.replace("train", out=str(tmp_path / "stopped"))

    def send_sigterm(*args):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(loop, "train_step", call_after(9, send_sigterm))  # iteration 9: mid-epoch 2
    with pytest.raises(TrainingInterrupted, match="--resume auto"):
        fit(stopped, progress=False)
    state, _ = load_checkpoint(tmp_path / "stopped")
    assert (state["epoch"], state["batch"], state["iteration"]) == (1, 3, 9)

    monkeypatch.setattr(loop, "train_step", train_step)
    resumed = fit(stopped, resume="auto", progress=False)
    assert read_rows(resumed) == read_rows(full)
    final_full, _ = load_checkpoint(full)
    final_resumed, _ = load_checkpoint(resumed)
    for name, tensor in final_full["generator"].items():
        assert torch.equal(tensor, final_resumed["generator"][name]), name


def test_resume_with_only_the_run_folder_keeps_the_runs_settings(tiny_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    first = ["train", "--data", str(tiny_dataset), "--out", str(run), *TINY_FLAGS, "--no-report", "--direction", "BtoA"]
    assert main([*first, "--n-epochs", "1", "--n-epochs-decay", "0"]) == 0
    # the command a stopped run prints (plus one more epoch): no other flag repeated
    assert main(["train", "--resume", "auto", "--out", str(run), "--n-epochs", "2", "--no-report", "--quiet"]) == 0
    state, config = load_checkpoint(run)
    assert state["epoch"] == 2 and config.data.direction == "BtoA" and config.model.base_channels == 8
    assert config.data.data == str(tiny_dataset) and config.train.tensorboard is False
    assert "with changes: optim.n_epochs: 1 -> 2" in capsys.readouterr().out
    # a run folder (or checkpoint) path without --out continues in that folder, not in the default one
    assert main(["train", "--resume", str(run), "--n-epochs", "3", "--no-report", "--quiet"]) == 0
    assert load_checkpoint(run)[0]["epoch"] == 3 and not (tmp_path / "runs").exists()


def test_a_new_run_never_overwrites_an_existing_runs_checkpoints(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run), *TINY_FLAGS, "--no-report"]
    assert main([*argv, "--n-epochs", "1", "--n-epochs-decay", "0"]) == 0
    before = (run / "checkpoints" / "latest.pt").read_bytes()
    capsys.readouterr()
    assert main([*argv, "--n-epochs", "1", "--n-epochs-decay", "0"]) == 2  # --resume forgotten
    err = capsys.readouterr().err
    assert "already holds a run's checkpoints; continue it with --resume auto" in err
    assert (run / "checkpoints" / "latest.pt").read_bytes() == before


def test_a_run_resumed_from_elsewhere_never_takes_over_another_runs_folder(tiny_dataset, tmp_path, capsys):
    first, other = tmp_path / "first", tmp_path / "other"
    argv = [
        "train",
        "--data",
        str(tiny_dataset),
        *TINY_FLAGS,
        "--no-report",
        "--n-epochs",
        "1",
        "--n-epochs-decay",
        "0",
    ]
    assert main([*argv, "--out", str(first)]) == 0
    assert main([*argv, "--out", str(other), "--base-channels", "16"]) == 0
    before = {path.name: path.read_bytes() for path in (other / "checkpoints").glob("*.pt")}
    capsys.readouterr()
    assert main(["train", "--resume", str(first), "--out", str(other), "--n-epochs", "2", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run's checkpoints" in err and f"resume {first} into a new --out" in err
    assert {path.name: path.read_bytes() for path in (other / "checkpoints").glob("*.pt")} == before
    # into a fresh folder the same command branches off the first run
    assert (
        main(["train", "--resume", str(first), "--out", str(tmp_path / "branch"), "--n-epochs", "2", "--no-report"])
        == 0
    )


def test_a_new_run_never_overwrites_a_run_that_trained_but_saved_no_checkpoint(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run), *TINY_FLAGS, "--no-report"]
    one_epoch = ["--n-epochs", "1", "--n-epochs-decay", "0"]
    assert main([*argv, *one_epoch, "--save-every", "5"]) == 0  # an epoch logged, no checkpoint saved
    shutil.rmtree(run / "checkpoints")  # as for a run stopped before its first save
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    capsys.readouterr()
    assert main([*argv, *one_epoch]) == 2
    assert "already holds a run that logged training (log.csv) but saved no checkpoint" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before


def test_resume_with_other_networks_is_refused_in_one_line(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run), *TINY_FLAGS, "--no-report"]
    assert main([*argv, "--n-epochs", "1", "--n-epochs-decay", "0"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "auto", "--out", str(run), "--base-channels", "16", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "its networks differ" in err and "model.base_channels: 8 -> 16" in err and len(err.strip().splitlines()) == 1


def test_non_finite_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    config = tiny_config(tiny_dataset, tmp_path / "run").replace("train", save_every_iters=2)

    def inject_inf(generator, discriminator, opt_g, opt_d, source, target):
        return generator, discriminator, opt_g, opt_d, source * float("inf"), target

    monkeypatch.setattr(loop, "train_step", call_after(5, inject_inf))
    with pytest.raises(TrainingStopped, match="iteration 5") as stopped:
        fit(config, progress=False)
    assert "G_L1" in str(stopped.value) or "D_" in str(stopped.value)
    state, _ = load_checkpoint(tmp_path / "run")
    assert state["iteration"] == 4
    assert all(torch.isfinite(t).all() for t in state["generator"].values() if t.is_floating_point())


def test_nan_retries_roll_back_to_the_last_checkpoint_with_a_lower_lr(tiny_dataset, tmp_path, monkeypatch, caplog):
    config = tiny_config(tiny_dataset, tmp_path / "run").replace("train", save_every_iters=2, nan_retries=1)

    def inject_inf(generator, discriminator, opt_g, opt_d, source, target):
        return generator, discriminator, opt_g, opt_d, source * float("inf"), target

    monkeypatch.setattr(loop, "train_step", call_after(5, inject_inf))  # once: the retry runs clean
    run = fit(config, progress=False)
    assert logged(caplog, r"iteration 5 \(epoch 1\): going back to the last checkpoint with --lr 0.0001")
    state, saved = load_checkpoint(run)
    total = config.optim.n_epochs + config.optim.n_epochs_decay
    assert state["epoch"] == total and saved.optim.lr == config.optim.lr / 2  # the record says what ran
    assert all(torch.isfinite(t).all() for t in state["generator"].values() if t.is_floating_point())
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert float(rows[0]["lr"]) == config.optim.lr / 2  # epoch 1 was redone from the iteration-4 checkpoint

    monkeypatch.setattr(loop, "train_step", call_after(1, inject_inf))  # no retries left: stops as before
    with pytest.raises(TrainingStopped, match="iteration 1"):
        fit(config.replace("train", out=str(tmp_path / "again"), nan_retries=0), progress=False)


def test_resume_follows_the_configs_learning_rate(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "run").replace("optim", n_epochs=1, n_epochs_decay=0)
    fit(config, progress=False)
    longer = config.replace("optim", n_epochs=2, n_epochs_decay=0, lr=1e-5)
    run = fit(longer, resume="auto", progress=False)
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [float(row["lr"]) for row in rows] == [config.optim.lr, 1e-5]


def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(tiny_dataset, tmp_path, caplog):
    run = fit(tiny_config(tiny_dataset, tmp_path / "run"), progress=False)
    latest = run / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:1000])  # truncated, as by a failing disk
    assert resolve_checkpoint(run).name == "epoch_0002.pt"
    assert logged(caplog, "latest.pt")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        read_checkpoint_file(latest)


def test_lazy_checkpoint_reads_give_the_same_state_and_still_catch_damage(tmp_path):
    state = {"format_version": 1, "weights": torch.randn(64, 64)}
    torch.save(state, tmp_path / "zip.pt")
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)  # cannot be memory-mapped
    for name in ("zip.pt", "legacy.pt"):
        lazy = read_checkpoint_file(tmp_path / name, lazy=True)
        torch.testing.assert_close(lazy["weights"], state["weights"])
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((tmp_path / "zip.pt").read_bytes()[:-200])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        read_checkpoint_file(truncated, lazy=True)


def test_only_the_newest_k_epoch_checkpoints_are_kept(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "run").replace("optim", n_epochs=4, n_epochs_decay=0)
    run = fit(config.replace("train", keep_checkpoints=2), progress=False)
    assert sorted(p.name for p in (run / "checkpoints").glob("*.pt")) == [
        "epoch_0003.pt",
        "epoch_0004.pt",
        "latest.pt",
    ]


def test_bad_images_are_listed_at_start_and_skip_bad_trains_on_the_rest(tmp_path, capsys, caplog):
    data = write_pairs(tmp_path / "data", "train", 4)
    (data / "train" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (data / "train" / "text.jpg").write_text("not an image")
    Image.new("RGB", (33, 16)).save(data / "train" / "odd.png")
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY_FLAGS_WITH_WARNINGS, "--no-report"]
    argv += ["--n-epochs", "1", "--n-epochs-decay", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "3 unusable" in err and all(name in err for name in ("corrupt.png", "text.jpg", "odd.png"))
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert main([*argv, "--skip-bad"]) == 0
    assert len(logged(caplog, "skipping")) == 3
    state, _ = load_checkpoint(tmp_path / "run")
    assert state["iteration"] == 4


def test_the_cli_logs_a_skipped_image_as_one_warning_line_and_more_with_verbose(tmp_path, capsys):
    data = write_pairs(tmp_path / "data", "train", 2)
    (data / "train" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    argv = ["train", "--data", str(data), *TINY_FLAGS_WITH_WARNINGS, "--no-report", "--skip-bad"]
    argv += ["--n-epochs", "1", "--n-epochs-decay", "0", "--num-workers", "0"]
    handlers = list(logging.getLogger("pix2pix").handlers)
    for run, verbose in (("default", []), ("verbose", ["--verbose"])):  # a second in-process call adds no handler
        assert main([*verbose, *argv, "--out", str(tmp_path / run)]) == 0
        lines = capsys.readouterr().err.splitlines()
        warned = [line for line in lines if "warning:" in line]
        assert len(warned) == 1 and warned[0].startswith("pix2pix train: warning: skipping ")
        assert "corrupt.png" in warned[0]
        assert any(line.startswith(f"training {tmp_path / run} on ") for line in lines) == bool(verbose)
    assert logging.getLogger("pix2pix").handlers == handlers
    assert main([*argv, "--out", str(tmp_path / "silent"), "--quiet"]) == 0
    assert "warning:" not in capsys.readouterr().err  # --quiet: errors only


@pytest.mark.slow
def test_warnings_of_the_cli_are_one_line_each(tmp_path):
    data = write_pairs(tmp_path / "data", "train", 2)
    (data / "train" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY_FLAGS_WITH_WARNINGS, "--no-report"]
    args.append("--skip-bad")
    process = run_cli_subprocess([*args, "--n-epochs", "1", "--n-epochs-decay", "0"], tmp_path)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "pix2pix train: warning: " in stderr and "corrupt.png" in stderr
    assert "UserWarning" not in stderr and "warnings.warn(" not in stderr


def test_skip_bad_also_skips_a_file_whose_data_is_truncated_behind_a_good_header(tmp_path, capsys, caplog):
    data = write_pairs(tmp_path / "data", "train", 4)
    whole = tmp_path / "whole.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 64, 3), np.uint8)).save(whole)
    (data / "train" / "truncated.jpg").write_bytes(whole.read_bytes()[:1500])  # passes the header check
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY_FLAGS_WITH_WARNINGS, "--no-report"]
    argv += ["--n-epochs", "1", "--n-epochs-decay", "0", "--num-workers", "0"]
    assert main(argv) == 2
    assert "truncated.jpg" in capsys.readouterr().err
    assert main([*argv, "--skip-bad"]) == 0
    assert logged(caplog, r"skipping .*truncated\.jpg")
    state, _ = load_checkpoint(tmp_path / "run")
    assert state["iteration"] == 5  # the epoch keeps its length: a readable pair stands in


def test_check_lists_exactly_the_bad_images_and_skip_bad_trains_on_every_other(tmp_path, caplog):
    data = write_pairs(tmp_path / "data", "train", 3)
    noise = np.random.default_rng(0).integers(0, 256, (32, 64, 3), np.uint8)
    Image.fromarray(noise).save(tmp_path / "whole.jpg")
    train = data / "train"
    # awkward but usable: converted, never refused
    Image.fromarray(noise).convert("RGBA").save(train / "rgba.png")
    Image.fromarray(noise).convert("CMYK").save(train / "cmyk.jpg")
    Image.fromarray(noise[..., 0].astype(np.uint16) * 257).save(train / "sixteen.png")  # 16-bit gray
    # bad: garbage, cut short behind a good header, and a single pixel (no A|B halves)
    (train / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (train / "truncated.jpg").write_bytes((tmp_path / "whole.jpg").read_bytes()[:1500])
    Image.new("RGB", (1, 1)).save(train / "pixel.png")

    report = check_dataset(data, progress=False)
    listed = " ".join(report.splits[0].corrupt + report.splits[0].mismatched)
    assert {name for name in ("corrupt", "truncated", "pixel", "rgba", "cmyk", "sixteen") if name in listed} == {
        "corrupt",
        "truncated",
        "pixel",
    }
    assert report.splits[0].pairs == 6
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY_FLAGS_WITH_WARNINGS, "--no-report"]
    argv += ["--n-epochs", "1", "--n-epochs-decay", "0", "--num-workers", "0", "--skip-bad"]
    assert main(argv) == 0
    assert logged(caplog, "skipping")
    state, _ = load_checkpoint(tmp_path / "run")
    assert state["iteration"] == 7  # the header check drops corrupt and pixel; truncated is replaced when read


def run_cli_subprocess(args, tmp_path):
    # the code under test, whichever copy of the package the environment has installed; one thread, since
    # with several, two identical CPU runs in separate processes now and then differ in the last bits (on a
    # busy 2-core Xeon about 1 in 10; docs/training.md, "Checkpoints"), which has nothing to do with resuming
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": repo, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "pix2pix", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_sigterm_and_sigkill_in_a_real_process_always_resume_to_the_same_end(tiny_dataset, tmp_path):
    """Bit for bit the weights of an uninterrupted run, with dropout in the generator (64 px)."""
    total_iterations = 6 * 30
    args = ["train", "--data", str(tiny_dataset), *TINY_FLAGS, "--no-report", "--save-every-iters", "20"]
    args += ["--n-epochs", "15", "--n-epochs-decay", "15", "--load-size", "64", "--crop-size", "64"]
    reference = run_cli_subprocess([*args, "--out", str(tmp_path / "reference")], tmp_path)
    _, stderr = reference.communicate(timeout=300)
    assert reference.returncode == 0, stderr
    assert has_dropout(tmp_path / "reference")
    expected, _ = load_checkpoint(tmp_path / "reference")
    rng = random.Random(0)
    for trial, sig in enumerate([signal.SIGTERM, signal.SIGKILL, signal.SIGKILL]):
        out = tmp_path / f"run{trial}"
        process = run_cli_subprocess([*args, "--out", str(out)], tmp_path)
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "latest.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.5))  # the run has hundreds of iterations left: the kill lands mid-run
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=120)
        if sig == signal.SIGTERM:  # checkpointed and resumable: exit code 75 (EX_TEMPFAIL), not a success
            assert process.returncode == 75 and "stopped at" in stdout, (process.returncode, stdout, stderr)
        interrupted, _ = load_checkpoint(out)  # never unreadable
        assert interrupted["iteration"] < total_iterations, "the signal came after the run had finished"
        for path in (out / "checkpoints").glob("*.pt"):
            read_checkpoint_file(path)
        resumed = run_cli_subprocess([*args, "--out", str(out), "--resume", "auto"], tmp_path)
        _, stderr = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, stderr
        state, _ = load_checkpoint(out)
        assert state["iteration"] == total_iterations
        for name, tensor in expected["generator"].items():
            assert torch.equal(tensor, state["generator"][name]), (trial, name)


def test_a_disk_too_full_for_checkpoints_is_refused_at_start(tiny_dataset, tmp_path, monkeypatch, capsys):
    real_usage = shutil.disk_usage
    monkeypatch.setattr(loop.shutil, "disk_usage", lambda path: real_usage(path)._replace(free=1000))
    argv = ["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"), *TINY_FLAGS, "--no-report"]
    assert main([*argv, "--n-epochs", "1", "--n-epochs-decay", "0"]) == 2
    err = capsys.readouterr().err
    assert "MiB free" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "checkpoints").exists()


# how a full disk shows: an OSError, or from torch's zip writer a RuntimeError with this kind of text
DISK_FULL = {
    "oserror": OSError(errno.ENOSPC, "No space left on device"),
    "torch-zip-writer": RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 9600 vs 9488"),
}


@pytest.mark.parametrize("failure", DISK_FULL)
def test_a_disk_filling_up_mid_run_stops_in_one_line_with_the_resume_command(
    tiny_dataset, tmp_path, monkeypatch, capsys, failure
):
    """The 4th write is epoch 2's second file: whichever it is, latest.pt must be no older than the newest
    epoch checkpoint, and loadable."""
    real_save, calls = torch.save, {"n": 0}

    def save_until_the_disk_is_full(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 4:
            raise DISK_FULL[failure]
        return real_save(*args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_the_disk_is_full)
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run), *TINY_FLAGS, "--no-report", "--save-every", "1"]
    assert main([*argv, "--n-epochs", "2", "--n-epochs-decay", "1"]) == 1  # a failure of the run, not of its flags
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "could not write" in err and "MiB free" in err and f"--resume auto --out {run}" in err
    monkeypatch.setattr(torch, "save", real_save)
    latest = read_checkpoint_file(run / "checkpoints" / "latest.pt")
    newest_epoch = max(read_checkpoint_file(p)["epoch"] for p in (run / "checkpoints").glob("epoch_*.pt"))
    assert latest["epoch"] >= newest_epoch == 1
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_a_disk_filling_up_at_an_epochs_samples_stops_in_one_line(tiny_dataset, tmp_path, monkeypatch, capsys):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(loop, "save_sample_grid", disk_full)
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run), *TINY_FLAGS, "--no-report"]
    assert main([*argv, "--n-epochs", "1", "--n-epochs-decay", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{run}: could not write the epoch's log, samples or checkpoint (No space left on device)" in err
    assert f"--resume auto --out {run}" in err


@pytest.mark.parametrize("resume", [False, True])
def test_temporaries_left_by_a_kill_during_a_write_are_removed(tiny_dataset, tmp_path, resume):
    run = tmp_path / "run"
    stale = run / "checkpoints" / ".latest.pt.k1ll3d.tmp"
    if resume:
        fit(tiny_config(tiny_dataset, run).replace("optim", n_epochs=1, n_epochs_decay=0), progress=False)
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a checkpoint")
    fit(tiny_config(tiny_dataset, run), resume="auto" if resume else None, progress=False)
    assert not stale.exists()
    assert (run / "checkpoints" / "latest.pt").exists()


def test_resuming_a_finished_run_says_there_is_nothing_to_do(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_dataset), "--out", str(run), *TINY_FLAGS, "--no-report"]
    assert main([*argv, "--n-epochs", "1", "--n-epochs-decay", "0"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "auto", "--out", str(run), "--no-report"]) == 0
    assert "pix2pix train: warning: " in capsys.readouterr().err
    assert main(["train", "--resume", "auto", "--out", str(run), "--no-report"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning:" in line]
    assert len(warned) == 1 and "has trained all 1 epochs already; nothing to do" in warned[0]
