"""The checkpoint file format and the rules for reading it, at the level of pix2pix/checkpoint.py: no training
run, only small states written and read back (tests/test_reliability.py has the same rules end to end)."""

from __future__ import annotations

import errno
import os
import re
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from pix2pix.checkpoint import (
    FORMAT_VERSION,
    LATEST,
    is_our_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    read_checkpoint_file,
    remove_stale_temporaries,
    resolve_checkpoint,
    run_folder_of,
    save_checkpoint,
)
from tests.helpers import logged, tiny_config


def small_state(tmp_path: Path, epoch: int = 1) -> dict:
    """What a checkpoint holds, in miniature: the config, weights, an optimiser, counters and RNG state."""
    generator = nn.Conv2d(3, 3, 3)
    optimizer = torch.optim.Adam(generator.parameters())
    generator(torch.randn(1, 3, 8, 8)).mean().backward()
    optimizer.step()  # so the optimiser state holds tensors too
    return {
        "config": tiny_config(tmp_path / "data", tmp_path / "run").to_dict(),
        "generator": generator.state_dict(),
        "opt_g": optimizer.state_dict(),
        "epoch": epoch,
        "batch": 0,
        "iteration": 3 * epoch,
        "rng": {"torch": torch.get_rng_state()},
    }


def write_run(tmp_path: Path, epochs: int = 2) -> Path:
    """A run folder as training leaves it: checkpoints/epoch_NNNN.pt for each epoch and latest.pt."""
    run = tmp_path / "run"
    for epoch in range(1, epochs + 1):
        state = small_state(tmp_path, epoch)
        save_checkpoint(run / "checkpoints" / f"epoch_{epoch:04d}.pt", state)
        save_checkpoint(run / "checkpoints" / LATEST, state)
    return run


def truncate(path: Path, keep: int = 1000) -> None:
    path.write_bytes(path.read_bytes()[:keep])  # as a failing disk or a copy cut short leaves it


class NotData:
    """An arbitrary object: pickling it stores a reference to code, which weights-only loading refuses."""


# ---- the format: save -> read


def test_save_then_read_gives_the_same_state_and_the_format_version(tmp_path):
    state = small_state(tmp_path)
    save_checkpoint(tmp_path / "c.pt", state)
    read = read_checkpoint_file(tmp_path / "c.pt")
    assert read["format_version"] == FORMAT_VERSION and is_our_checkpoint(read)
    assert set(read) == {"format_version", *state}
    for name, tensor in state["generator"].items():
        assert torch.equal(read["generator"][name], tensor), name
    assert torch.equal(read["rng"]["torch"], state["rng"]["torch"])
    assert read["opt_g"]["param_groups"] == state["opt_g"]["param_groups"]
    for key in state["opt_g"]["state"][0]:
        assert torch.equal(read["opt_g"]["state"][0][key], state["opt_g"]["state"][0][key]), key
    assert (read["epoch"], read["batch"], read["iteration"]) == (1, 0, 3)


def test_load_checkpoint_returns_the_state_and_its_config(tmp_path):
    state = small_state(tmp_path)
    save_checkpoint(tmp_path / "nested" / "folder" / "c.pt", state)  # missing folders are made
    loaded, config = load_checkpoint(tmp_path / "nested" / "folder" / "c.pt")
    assert config == tiny_config(tmp_path / "data", tmp_path / "run")
    assert loaded["config"] == state["config"]


def test_lazy_and_full_reads_agree(tmp_path):
    state = small_state(tmp_path)
    save_checkpoint(tmp_path / "c.pt", state)
    lazy = read_checkpoint_file(tmp_path / "c.pt", lazy=True)
    for name, tensor in state["generator"].items():
        assert torch.equal(lazy["generator"][name], tensor), name


# ---- what is refused, and how


def test_a_newer_format_is_refused_with_the_upgrade_message(tmp_path):
    path = tmp_path / "future.pt"
    torch.save({**small_state(tmp_path), "format_version": FORMAT_VERSION + 1}, path)  # as a newer pix2pix would
    newer = f"{path}: checkpoint format {FORMAT_VERSION + 1} is newer than this pix2pix ({FORMAT_VERSION})"
    with pytest.raises(ValueError, match=re.escape(f"{newer}; upgrade the package")):
        load_checkpoint(path)


def test_the_current_and_older_formats_are_read(tmp_path):
    for version in range(1, FORMAT_VERSION + 1):
        torch.save({**small_state(tmp_path), "format_version": version}, tmp_path / f"v{version}.pt")
        _, config = load_checkpoint(tmp_path / f"v{version}.pt")
        assert config.model.base_channels == 8


def test_a_checkpoint_without_its_config_or_with_a_bad_one_is_one_error_naming_the_file(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {**small_state(tmp_path), "config": None})
    with pytest.raises(ValueError, match=re.escape(f"{path}: a pix2pix checkpoint without its config")):
        load_checkpoint(path)
    state = small_state(tmp_path)
    state["config"]["optim"]["lr"] = 0  # ran once; out of range today
    save_checkpoint(path, state)
    with pytest.raises(ValueError, match=re.escape(f"{path}: its config: optim.lr = 0: must be")):
        load_checkpoint(path)


def test_an_official_style_state_dict_is_recognised_as_not_ours(tmp_path):
    path = tmp_path / "latest_net_G.pth"
    torch.save(nn.Conv2d(3, 3, 3).state_dict(), path)  # the official repo saves the bare state dict
    state = read_checkpoint_file(path)  # readable: it is data
    assert not is_our_checkpoint(state)
    assert not is_our_checkpoint([1, 2]) and not is_our_checkpoint(None)
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a pix2pix checkpoint (no format_version)")):
        load_checkpoint(path)


@pytest.mark.parametrize("keep", [0, 10, 1000, -200], ids=["empty", "header", "part", "all-but-the-end"])
def test_a_truncated_file_is_a_value_error_naming_the_path(tmp_path, keep):
    path = tmp_path / "c.pt"
    save_checkpoint(path, small_state(tmp_path))
    path.write_bytes(path.read_bytes()[:keep])
    for lazy in (False, True):
        with pytest.raises(ValueError, match=re.escape(f"{path}: not a readable checkpoint")):
            read_checkpoint_file(path, lazy=lazy)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_checkpoint(path)


def test_a_file_that_is_not_a_torch_file_at_all_is_a_value_error(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are not weights\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a readable checkpoint")):
        read_checkpoint_file(path)


def test_pickled_code_is_refused_as_weights_only_loading_does(tmp_path):
    path = tmp_path / "code.pt"
    torch.save({"format_version": FORMAT_VERSION, "payload": NotData()}, path)
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a readable checkpoint")):
        read_checkpoint_file(path)


def test_a_torchscript_archive_is_refused_with_its_own_message(tmp_path):
    path = tmp_path / "g.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices are not under test
        torch.jit.save(torch.jit.script(nn.Conv2d(3, 3, 3)), str(path))
    for read in (read_checkpoint_file, load_checkpoint):
        with pytest.raises(ValueError, match=re.escape(f"{path}: a TorchScript export")) as refused:
            read(path)
        assert "torch.jit.load" in str(refused.value)


# ---- which file a path means


def test_a_run_folder_means_its_latest_checkpoint(tmp_path):
    run = write_run(tmp_path)
    assert resolve_checkpoint(run) == run / "checkpoints" / LATEST
    assert resolve_checkpoint(str(run)) == run / "checkpoints" / LATEST  # a string as well as a Path
    state, _ = load_checkpoint(run)
    assert state["epoch"] == 2


def test_a_file_is_taken_as_is_and_a_missing_one_is_not_found(tmp_path):
    run = write_run(tmp_path)
    epoch_one = run / "checkpoints" / "epoch_0001.pt"
    assert resolve_checkpoint(epoch_one) == epoch_one
    truncate(epoch_one)
    assert resolve_checkpoint(epoch_one) == epoch_one  # no fallback for a file named explicitly
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'missing.pt'}: checkpoint not found")):
        resolve_checkpoint(tmp_path / "missing.pt")


def test_a_damaged_latest_falls_back_to_the_newest_readable_epoch_with_a_warning(tmp_path, caplog):
    run = write_run(tmp_path, epochs=3)
    checkpoints = run / "checkpoints"
    truncate(checkpoints / LATEST)
    assert resolve_checkpoint(run) == checkpoints / "epoch_0003.pt"
    assert logged(caplog, r"latest\.pt: not a readable checkpoint.*trying the previous checkpoint")
    assert {record.levelname for record in caplog.records if record.name.startswith("pix2pix")} == {"WARNING"}
    truncate(checkpoints / "epoch_0003.pt")
    caplog.clear()
    assert resolve_checkpoint(run) == checkpoints / "epoch_0002.pt"
    assert [Path(message.split(":")[0]).name for message in logged(caplog, "")] == [LATEST, "epoch_0003.pt"]
    caplog.clear()
    state, _ = load_checkpoint(run)
    assert state["epoch"] == 2 and logged(caplog, "trying the previous checkpoint")


def test_epoch_checkpoints_alone_are_enough(tmp_path, caplog):
    run = write_run(tmp_path)
    (run / "checkpoints" / LATEST).unlink()
    assert resolve_checkpoint(run) == run / "checkpoints" / "epoch_0002.pt"
    assert not logged(caplog, "")  # nothing damaged: nothing to warn about


def test_a_run_folder_with_every_checkpoint_damaged_is_an_error(tmp_path, caplog):
    run = write_run(tmp_path)
    for path in (run / "checkpoints").glob("*.pt"):
        truncate(path)
    with pytest.raises(ValueError, match=r"no readable checkpoint \(all 3 are damaged\)"):
        resolve_checkpoint(run)
    assert len(logged(caplog, "trying the previous checkpoint")) == 3


@pytest.mark.parametrize("has_checkpoint_folder", [False, True])
def test_a_run_folder_without_checkpoints_is_not_found(tmp_path, has_checkpoint_folder):
    run = tmp_path / "run"
    run.mkdir()
    if has_checkpoint_folder:
        (run / "checkpoints").mkdir()
        (run / "checkpoints" / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(FileNotFoundError, match="no checkpoint found"):
        resolve_checkpoint(run)


def test_the_run_folder_of_a_path(tmp_path):
    run = write_run(tmp_path)
    assert run_folder_of(run) == run
    assert run_folder_of(run / "checkpoints" / LATEST) == run
    assert run_folder_of(run / "checkpoints" / "epoch_0001.pt") == run
    elsewhere = tmp_path / "downloads" / "facades.pt"  # a checkpoint outside a run: its own folder
    assert run_folder_of(elsewhere) == tmp_path / "downloads"


# ---- the files a run keeps


def test_prune_keeps_the_newest_k_epoch_checkpoints_and_latest(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    names = [f"epoch_{epoch:04d}.pt" for epoch in (1, 2, 3, 9, 10, 11)]  # zero-padded: name order is epoch order
    for name in [*names, LATEST, "best.pt"]:
        (folder / name).write_bytes(b"")
    prune_checkpoints(folder, keep=0)  # 0: keep all
    assert len(list(folder.glob("*.pt"))) == 8
    prune_checkpoints(folder, keep=2)
    assert sorted(path.name for path in folder.glob("*.pt")) == ["best.pt", "epoch_0010.pt", "epoch_0011.pt", LATEST]
    prune_checkpoints(folder, keep=5)  # fewer than keep: nothing to do
    assert len(list(folder.glob("*.pt"))) == 4


def test_remove_stale_temporaries_removes_only_the_writers_temporary_files(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    stale = [".latest.pt.k1ll3d.tmp", ".epoch_0003.pt.a8b9c0.tmp", ".best.pt.x.tmp"]
    kept = [LATEST, "epoch_0003.pt", "latest.pt.x.tmp", ".latest.pt", "notes.tmp", ".config.json.x.tmp"]
    for name in [*stale, *kept]:
        (folder / name).write_bytes(b"x")
    remove_stale_temporaries(folder)
    assert sorted(path.name for path in folder.iterdir()) == sorted(kept)


# ---- the atomic write


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_leaves_no_temporary_and_the_previous_file_intact(tmp_path, monkeypatch, failure):
    path = tmp_path / "checkpoints" / LATEST
    save_checkpoint(path, small_state(tmp_path, epoch=1))
    before = path.read_bytes()

    def write_half_then_fail(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")  # the write got under way before it failed
        raise failure

    monkeypatch.setattr(torch, "save", write_half_then_fail)
    with pytest.raises(type(failure)):
        save_checkpoint(path, small_state(tmp_path, epoch=2))
    assert sorted(p.name for p in path.parent.iterdir()) == [LATEST]  # no temporary left behind
    assert path.read_bytes() == before
    monkeypatch.undo()
    assert read_checkpoint_file(path)["epoch"] == 1


def test_a_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "epoch_0001.pt"

    def fail(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError, match="Input/output error"):
        save_checkpoint(path, small_state(tmp_path))
    assert list(path.parent.iterdir()) == []


def test_a_successful_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / LATEST
    save_checkpoint(path, small_state(tmp_path, epoch=1))
    save_checkpoint(path, small_state(tmp_path, epoch=2))
    assert [p.name for p in tmp_path.iterdir()] == [LATEST]
    assert read_checkpoint_file(path)["epoch"] == 2


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_written_file_gets_a_new_files_permissions_or_keeps_the_ones_it_had(tmp_path):
    """mkstemp makes its file owner-only: renamed into place as it was, a checkpoint or export would be
    unreadable to the group a shared run folder or a server's user relies on."""
    from pix2pix.atomic import write_atomically

    umask = os.umask(0)  # read it: set, then straight back
    os.umask(umask)
    fresh, kept = tmp_path / "model.onnx", tmp_path / "private.pt"
    write_atomically(fresh, lambda f: f.write(b"x"))
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask
    kept.write_bytes(b"old")
    kept.chmod(0o600)
    write_atomically(kept, lambda f: f.write(b"new"))
    assert kept.stat().st_mode & 0o777 == 0o600 and kept.read_bytes() == b"new"
