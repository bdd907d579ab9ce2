"""A 2-process gloo run (torchrun on CPU) matches one process over the same global batch."""

import csv
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from pix2pix.checkpoint import load_checkpoint
from pix2pix.training.acceleration import plan_acceleration
from pix2pix.training.distributed import Process, shard_order
from tests.helpers import TINY_FLAGS, TINY_FLAGS_WITH_WARNINGS, tiny_config

REPO = str(Path(__file__).resolve().parents[1])
# instance norm and no dropout: per-sample maths and no per-process random draws, so the runs can agree
MATCHABLE = ["--norm", "instance", "--disc-norm", "instance", "--no-dropout", "--no-report", "--no-flip"]


def run_pix2pix(
    args: list[str], cwd: Path, processes: int = 1, rendezvous: tuple[str, ...] = ("--standalone",)
) -> subprocess.CompletedProcess:
    launcher = ["-m", "torch.distributed.run", *rendezvous, "--nproc_per_node", str(processes)]
    command = [sys.executable, *(launcher if processes > 1 else []), "-m", "pix2pix", *args]
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def finished(result: subprocess.CompletedProcess) -> bool:
    """The launch succeeded, or the run finished (rank 0 reported its run folder) and the only failure is
    the rare abort of a gloo process at interpreter exit, in torch's C++ teardown after
    destroy_process_group (rare; docs/training.md, "Several processes or GPUs")."""
    teardown_abort = "terminate called without an active exception" in result.stderr
    return result.returncode == 0 or (teardown_abort and "run folder:" in result.stdout)


def test_ranks_take_interleaved_shards_that_rebuild_the_global_batches():
    order = list(range(10))
    shards = [shard_order(order, Process(rank, 2, torch.device("cpu"))) for rank in (0, 1)]
    assert shards == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]
    odd = [shard_order(list(range(5)), Process(rank, 2, torch.device("cpu"))) for rank in (0, 1)]
    assert [len(s) for s in odd] == [3, 3]  # padded by wrapping so both ranks take the same steps


def test_batch_norm_across_processes_warns_and_suggests_sync_bn_or_instance_norm(tmp_path):
    config = tiny_config(tmp_path, tmp_path / "run", device="cpu")  # batch norm in G and D, batch 1
    rank0, rank1 = (Process(rank, 2, torch.device("cpu")) for rank in (0, 1))
    with pytest.warns(UserWarning, match=r"1 image\(s\) on its own.*global batch of 2; use --sync-bn.*--norm instance"):
        plan_acceleration(config, rank0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan_acceleration(config, rank1)  # the other ranks stay quiet
        instance = config.replace("model", norm="instance", disc_norm="instance")
        assert not plan_acceleration(instance, rank0).sync_bn
        plan_acceleration(config, Process(0, 1, torch.device("cpu")))  # one process: nothing to say
    with pytest.raises(ValueError, match="--sync-bn needs CUDA"):
        plan_acceleration(config.replace("train", sync_bn=True), rank0)


@pytest.mark.distributed
def test_two_gloo_processes_match_one_process_with_the_global_batch_and_resume(tiny_dataset, tmp_path):
    common = ["train", "--data", str(tiny_dataset), *TINY_FLAGS, *MATCHABLE]
    train_in_one_and_in_two_processes(common, tmp_path, batch_per_process=1)
    state_single, _ = load_checkpoint(tmp_path / "single")
    state_two, config_two = load_checkpoint(tmp_path / "two")  # single-process loadable: no "module." keys
    assert state_two["iteration"] == 3 * 3 and state_single["iteration"] == 3 * 3
    # Weights agree to float tolerance. Biases of convolutions followed by instance norm are left out:
    # their gradient is exactly zero in theory, so Adam turns rounding noise into steps of size ~lr.
    for network in ("generator", "discriminator"):
        for name, tensor in state_single[network].items():
            if name.endswith("weight"):
                assert torch.allclose(tensor, state_two[network][name], rtol=1e-4, atol=1e-5), f"{network} {name}"
    # the logged losses (means over the global batch) agree too; only rank 0 wrote the log
    single_rows, two_rows = (read_losses(tmp_path / run / "log.csv") for run in ("single", "two"))
    assert len(two_rows) == 3
    for a, b in zip(single_rows, two_rows):
        assert a == pytest.approx(b, rel=1e-5)


# torchrun runs this in place of `python -m pix2pix`: rank 0 is sent SIGTERM during its STOP_AT-th step, so
# both processes stop (they vote) after that step, in the middle of an epoch
STOPPING_LAUNCHER = """
import os, signal, sys
from pix2pix.cli import main
from pix2pix.training import loop
step, calls = loop.train_step, [0]
def step_then_stop(*args, **kwargs):
    calls[0] += 1
    if calls[0] == int(os.environ["STOP_AT"]) and os.environ["RANK"] == "0":
        os.kill(os.getpid(), signal.SIGTERM)
    return step(*args, **kwargs)
loop.train_step = step_then_stop
sys.exit(main())
"""


@pytest.mark.distributed
def test_two_gloo_processes_resumed_mid_epoch_log_the_epoch_means_of_an_uninterrupted_run(tiny_dataset, tmp_path):
    """The stopped epoch's loss sums of both processes reach the checkpoint (rank 0's alone would be counted
    twice after the resume)."""
    common = ["train", "--data", str(tiny_dataset), *TINY_FLAGS, *MATCHABLE, "--n-epochs", "2", "--n-epochs-decay", "1"]
    single = run_pix2pix([*common, "--batch-size", "2", "--out", str(tmp_path / "single")], tmp_path)
    assert single.returncode == 0, single.stderr
    two = [*common, "--batch-size", "1", "--out", str(tmp_path / "two")]
    launcher = tmp_path / "stopping_launcher.py"
    launcher.write_text(STOPPING_LAUNCHER)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(launcher)]
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1", "STOP_AT": "5"}  # 3 steps an epoch
    stopped = subprocess.run([*command, *two], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert "stopped at epoch 2, iteration 5" in stopped.stderr + stopped.stdout, stopped.stderr
    state, _ = load_checkpoint(tmp_path / "two")
    assert (state["epoch"], state["batch"]) == (1, 2)
    resumed = run_pix2pix([*two, "--resume", "auto"], tmp_path, processes=2)
    assert finished(resumed), resumed.stderr
    single_rows, two_rows = (read_losses(tmp_path / run / "log.csv") for run in ("single", "two"))
    assert len(two_rows) == 3
    for a, b in zip(single_rows, two_rows):
        assert a == pytest.approx(b, rel=1e-5)


def train_in_one_and_in_two_processes(common: list[str], tmp_path: Path, *, batch_per_process: int) -> None:
    """3 epochs into tmp_path/single (one process, the global batch) and tmp_path/two (two processes), the
    latter stopped after 2 epochs and resumed, as two processes again, to the end."""
    epochs = ["--n-epochs", "2", "--save-every", "2"]
    single = [*common, *epochs, "--n-epochs-decay", "1", "--batch-size", str(2 * batch_per_process)]
    result = run_pix2pix([*single, "--out", str(tmp_path / "single")], tmp_path)
    assert result.returncode == 0, result.stderr
    two = [*common, *epochs, "--batch-size", str(batch_per_process), "--out", str(tmp_path / "two")]
    first = run_pix2pix([*two, "--n-epochs-decay", "0"], tmp_path, processes=2)
    assert finished(first), first.stderr
    resumed = run_pix2pix([*two, "--n-epochs-decay", "1", "--resume", "auto"], tmp_path, processes=2)
    assert finished(resumed), resumed.stderr


def read_losses(path: Path) -> list[list[float]]:
    with path.open() as f:
        return [[float(row[name]) for name in ("G_GAN", "G_L1", "D_real", "D_fake")] for row in csv.DictReader(f)]


@pytest.mark.distributed
def test_under_torchrun_only_rank_0_logs_warnings(tiny_dataset, tmp_path):
    (tiny_dataset / "train" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    args = ["train", "--data", str(tiny_dataset), *TINY_FLAGS_WITH_WARNINGS, *MATCHABLE, "--skip-bad"]
    result = run_pix2pix(
        [*args, "--n-epochs", "1", "--n-epochs-decay", "0", "--out", str(tmp_path / "run")], tmp_path, 2
    )
    assert finished(result), result.stderr
    assert result.stderr.count("warning: skipping") == 1, result.stderr


@pytest.mark.distributed
@pytest.mark.parametrize("backend", ["static", "c10d"])
def test_the_multi_node_launch_form_trains_on_one_node(tiny_dataset, tmp_path, backend):
    """The multi-node command of docs/training.md (explicit node count, rank and rendezvous endpoint), on one
    node."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rendezvous = ("--nnodes=1", "--node_rank=0", f"--rdzv_backend={backend}", f"--rdzv_endpoint=127.0.0.1:{port}")
    args = ["train", "--data", str(tiny_dataset), *TINY_FLAGS, *MATCHABLE, "--out", str(tmp_path / "run")]
    result = run_pix2pix([*args, "--n-epochs", "1", "--n-epochs-decay", "0"], tmp_path, 2, rendezvous)
    assert finished(result), result.stderr
    state, _ = load_checkpoint(tmp_path / "run")
    assert state["iteration"] == 3  # 6 training pairs, batch 1 per process, 2 processes


@pytest.mark.distributed
def test_cyclegan_in_two_gloo_processes_matches_one_process_pools_and_resume_included(tmp_path):
    """Each process takes half of the global batch and the image pools see the whole of it, so two
    processes with batch 2 train as one with batch 4, pool draws included, and resume as it would."""
    from tests.test_cyclegan import TINY_FLAGS as CYCLE_FLAGS
    from tests.test_cyclegan_parts import write_unpaired

    data = write_unpaired(tmp_path / "data", a_count=8, b_count=8)
    common = ["train", "--model", "cyclegan", "--data", str(data), *CYCLE_FLAGS, "--no-flip", "--no-report"]
    # batch 2 a process: the pools must put the gathered fakes back in the global batch's order
    train_in_one_and_in_two_processes(common, tmp_path, batch_per_process=2)
    state_single, _ = load_checkpoint(tmp_path / "single")
    state_two, _ = load_checkpoint(tmp_path / "two")
    assert state_single["iteration"] == state_two["iteration"] == 3 * 2  # 8 images, a global batch of 4
    for network in ("generator", "generator_b", "discriminator", "discriminator_b"):
        for name, tensor in state_single[network].items():
            if name.endswith("weight"):  # as above: biases before instance norm only gather rounding noise
                # measured on a 2-core AMD EPYC: rounding moves a weight up to 3e-4 of its tensor's largest
                # value over the 6 steps; the global batch gathered in the wrong order moves it 1e-2
                difference = (tensor - state_two[network][name]).abs().max()
                assert difference <= 2e-3 * tensor.abs().max(), f"{network} {name}"
    for domain in ("A", "B"):  # the pools (size 2) drew and kept the same images (else differ by ~0.7)
        kept_single, kept_two = (state["pools"][domain]["images"] for state in (state_single, state_two))
        assert len(kept_single) == len(kept_two) == 2
        assert all(torch.allclose(a, b, atol=5e-3) for a, b in zip(kept_single, kept_two))
    with (tmp_path / "single" / "log.csv").open() as f, (tmp_path / "two" / "log.csv").open() as g:
        rows_single, rows_two = list(csv.DictReader(f)), list(csv.DictReader(g))
    assert len(rows_two) == 3
    for a, b in zip(rows_single, rows_two):
        assert float(a["cycle_A"]) == pytest.approx(float(b["cycle_A"]), rel=1e-4)
        assert float(a["D_B"]) == pytest.approx(float(b["D_B"]), rel=1e-4)


@pytest.mark.distributed
def test_cyclegan_under_torchrun_refuses_images_of_several_sizes(tmp_path):
    from tests.test_cyclegan import TINY_FLAGS as CYCLE_FLAGS
    from tests.test_cyclegan_parts import write_unpaired

    data = write_unpaired(tmp_path / "data", a_count=2, b_count=2)
    args = ["train", "--model", "cyclegan", "--data", str(data), *CYCLE_FLAGS, "--preprocess", "scale_width"]
    result = run_pix2pix([*args, "--out", str(tmp_path / "run")], tmp_path, processes=2)
    assert result.returncode != 0 and 'data.preprocess = "scale_width": under torchrun' in result.stderr
