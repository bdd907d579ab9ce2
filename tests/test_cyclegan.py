"""CycleGAN wired into training: `--model cyclegan` config rules, recipes, the built-in unpaired data, a
CLI run, exact resume, translation both ways, and the official networks' sizes and weights."""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import pix2pix.training.cycle_loop as cycle_loop
from pix2pix.checkpoint import load_checkpoint
from pix2pix.cli import build_parser, main
from pix2pix.config import DataConfig, LossConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig
from pix2pix.data.builtin import resolve_unpaired_root, unpair_dataset
from pix2pix.data.synthetic import generate_synthetic_facades
from pix2pix.flags import build_config
from pix2pix.inference import Pix2Pix
from pix2pix.networks import build_discriminator_for, build_generator_for, reverse_domains
from pix2pix.training.acceleration import plan_acceleration
from pix2pix.training.cycle_loop import CYCLE_LOG_FIELDS, build_cycle_state, build_unpaired_dataset, fit_cyclegan
from pix2pix.training.cycle_step import cycle_train_step
from pix2pix.training.distributed import start_process
from pix2pix.training.loop import TrainingInterrupted, TrainingStopped, checkpoint_mib
from pix2pix.training.monitor import load_cycle_validation, validate_cycle
from tests.test_cyclegan_parts import write_domain, write_unpaired

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "official"
CYCLEGAN_CHANGES = {
    "model": {"model": "cyclegan", "generator": "resnet_6blocks", "disc_conditional": False},
    "loss": {"gan_mode": "lsgan"},
}
# `pix2pix train --model cyclegan` flags for networks that cost milliseconds per iteration
TINY_FLAGS = (
    "--load-size 36 --crop-size 32 --generator resnet_6blocks --base-channels 4 --disc-channels 4 --pool-size 2 "
    "--num-workers 0 --no-tensorboard --quiet"
).split()


@pytest.fixture
def unpaired(tmp_path: Path) -> Path:
    """trainA (3 images), trainB (4) and testA/testB (2 each), 40 px random noise."""
    root = write_unpaired(tmp_path / "data", a_count=3, b_count=4)
    return write_unpaired(root, a_count=2, b_count=2, split="test")


def tiny_cycle_config(data: Path, out: Path, **model_changes: Any) -> RunConfig:
    return RunConfig(
        data=DataConfig(data=str(data), load_size=36, crop_size=32, num_workers=0),
        model=ModelConfig(
            model="cyclegan",
            generator="resnet_6blocks",
            base_channels=4,
            disc_channels=4,
            norm="instance",
            disc_norm="instance",
            dropout=False,
            disc_conditional=False,
            **model_changes,
        ),
        loss=LossConfig(gan_mode="lsgan", pool_size=2),
        optim=OptimConfig(n_epochs=2, n_epochs_decay=1),
        train=TrainConfig(out=str(out), sample_every=1, save_every=1, tensorboard=False, num_samples=2),
    )


def read_rows(run: Path) -> list[dict[str, str]]:
    with (run / "log.csv").open() as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


# --- config


def test_pix2pix_stays_the_default_model() -> None:
    assert RunConfig().model.model == "pix2pix"
    assert RunConfig.from_dict({}) == RunConfig()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"loss": {"gan_mode": "hinge"}}, 'loss.gan_mode = "hinge"'),
        ({"model": {"disc_conditional": True}}, "model.disc_conditional = true"),
        ({"model": {"in_channels": 1}}, "loss.lambda_identity = 0.5: the identity loss needs in_channels"),
        ({"data": {"color_space": "lab"}, "model": {"in_channels": 1, "out_channels": 2}}, 'data.color_space = "lab"'),
        ({"loss": {"gan": False}}, "loss.gan = false"),
        ({"optim": {"ema_decay": 0.999}, "loss": {"r1_weight": 1.0}}, "loss.r1_weight, optim.ema_decay work with"),
    ],
)
def test_cyclegan_refuses_what_it_cannot_do_in_one_line(changes: dict, message: str) -> None:
    sections: dict[str, dict[str, Any]] = {name: dict(values) for name, values in CYCLEGAN_CHANGES.items()}
    for section, values in changes.items():
        sections.setdefault(section, {}).update(values)
    with pytest.raises(ValueError) as error:
        RunConfig.from_dict(sections)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("field", "value"), [("lambda_a", -1.0), ("lambda_b", -0.5), ("lambda_identity", -1), ("pool_size", -1)]
)
def test_cyclegan_weights_and_pool_size_have_range_rules(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"loss.{field} = -"):
        RunConfig.from_dict({"loss": {field: value}})


def test_identity_off_allows_other_channels_and_grayscale() -> None:
    config = RunConfig.from_dict(
        {**CYCLEGAN_CHANGES, "model": {**CYCLEGAN_CHANGES["model"], "in_channels": 1}}
        | {"loss": {"gan_mode": "lsgan", "lambda_identity": 0}}
    )
    assert config.model.in_channels == 1


def test_model_cyclegan_without_a_recipe_starts_from_the_papers_settings() -> None:
    args = build_parser().parse_args(["train", "--model", "cyclegan", "--data", "ROOT", "--out", "RUN"])
    config = build_config(args)
    paper = RunConfig.load(Path(__file__).resolve().parents[1] / "pix2pix" / "recipes" / "cyclegan.toml")
    assert config == paper.replace("data", data="ROOT").replace("train", out="RUN")
    model, loss, optim, data = config.model, config.loss, config.optim, config.data
    assert (model.generator, model.norm, model.disc_norm, model.dropout) == (
        "resnet_9blocks",
        "instance",
        "instance",
        False,
    )
    assert not model.disc_conditional and loss.gan_mode == "lsgan" and loss.pool_size == 50
    assert (loss.lambda_a, loss.lambda_b, loss.lambda_identity) == (10.0, 10.0, 0.5)
    assert (optim.batch_size, optim.lr, optim.beta1, optim.n_epochs, optim.n_epochs_decay) == (1, 2e-4, 0.5, 100, 100)
    assert (data.load_size, data.crop_size) == (286, 256)
    # a pix2pix run is untouched by it
    assert build_config(build_parser().parse_args(["train"])) == RunConfig()


# --- the built-in unpaired data


def test_builtin_unpaired_data_takes_each_domain_from_other_pairs(tmp_path: Path) -> None:
    paired = generate_synthetic_facades(tmp_path / "facades", size=32, counts={"train": 6, "val": 0, "test": 2})
    root = unpair_dataset(paired, tmp_path / "cache")
    names = {folder: sorted(p.stem for p in (root / folder).iterdir()) for folder in ("trainA", "trainB", "testA")}
    assert names == {"trainA": ["1", "2", "3"], "trainB": ["4", "5", "6"], "testA": ["1", "2"]}
    with Image.open(paired / "train" / "4.png") as pair, Image.open(root / "trainB" / "4.png") as photo:
        assert photo.size == (32, 32)
        assert np.array_equal(np.asarray(pair.convert("RGB"))[:, 32:], np.asarray(photo.convert("RGB")))
    stamp = (root / "trainA" / "1.png").stat().st_mtime_ns
    assert unpair_dataset(paired, tmp_path / "cache") == root  # made once
    assert (root / "trainA" / "1.png").stat().st_mtime_ns == stamp


def test_processes_that_make_the_builtin_unpaired_set_at_once_each_get_a_whole_one(tmp_path: Path) -> None:
    """torchrun's ranks all ask for it on a fresh cache."""
    import threading

    paired = generate_synthetic_facades(tmp_path / "facades", size=32, counts={"train": 40, "val": 2, "test": 2})
    roots: list[Path] = []
    errors: list[BaseException] = []

    def make() -> None:
        try:
            roots.append(unpair_dataset(paired, tmp_path / "cache"))
        except BaseException as error:  # noqa: BLE001  (reported by the assertion below)
            errors.append(error)

    threads = [threading.Thread(target=make) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(roots)) == 1
    assert sorted(p.name for p in (roots[0] / "trainA").iterdir()) == [
        f"{i}.png" for i in sorted(range(1, 21), key=str)
    ]
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]  # no staging left


def test_demo_recipe_trains_on_the_builtin_unpaired_data() -> None:
    demo = RunConfig.load(Path(__file__).resolve().parents[1] / "pix2pix" / "recipes" / "cyclegan_demo.toml")
    assert demo.model.model == "cyclegan" and demo.data.data == "builtin" and demo.data.crop_size == 64


@pytest.mark.slow
def test_the_demo_recipe_trains_end_to_end_on_the_builtin_unpaired_data(tmp_path: Path) -> None:
    """The CycleGAN quick start, shrunk to one epoch of tiny networks: the built-in set is derived on first
    use, with each domain from other pairs, and the run translates both ways."""
    run = tmp_path / "run"
    tiny = ["--base-channels", "4", "--disc-channels", "4", "--load-size", "36", "--crop-size", "32", "--no-report"]
    argv = ["train", "--config", "cyclegan_demo", "--out", str(run), "--n-epochs", "1", "--n-epochs-decay", "0"]
    assert main([*argv, *tiny, "--num-workers", "0", "--no-tensorboard", "--quiet"]) == 0
    (row,) = read_rows(run)
    data = load_checkpoint(run)[1].data.data
    root = resolve_unpaired_root("builtin")  # made by the run, found again
    assert root.is_relative_to(Path(os.environ["PIX2PIX_HOME"]))
    sizes = [len(list((root / domain).iterdir())) for domain in ("trainA", "trainB")]
    assert data == "builtin" and int(row["iteration"]) == max(sizes) and min(sizes) > 0
    assert not {path.name for path in (root / "trainA").iterdir()} & {path.name for path in (root / "trainB").iterdir()}
    image = Image.new("RGB", (40, 30), (10, 200, 30))
    for reverse in (False, True):
        assert Pix2Pix.load(run, reverse=reverse).translate(image).size == (40, 30)


# --- training


def test_cli_trains_cyclegan_and_writes_checkpoints_log_samples_and_report(
    unpaired: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = ["train", "--model", "cyclegan", "--data", str(unpaired), "--out", str(run), *TINY_FLAGS]
    assert main([*argv, "--n-epochs", "1", "--n-epochs-decay", "1", "--num-samples", "2", "--save-every", "1"]) == 0
    with (run / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CYCLE_LOG_FIELDS and [row["iteration"] for row in rows] == ["4", "8"]
    assert all(float(row["cycle_A"]) > 0 and float(row["D_B"]) > 0 for row in rows)
    state, config = load_checkpoint(run)
    assert config.model.model == "cyclegan" and config.loss.pool_size == 2
    assert {"generator", "generator_b", "discriminator", "discriminator_b", "opt_g", "opt_d", "pools", "rng"} <= set(
        state
    )
    assert len(state["pools"]["A"]["images"]) == 2  # filled: 8 fakes offered to a pool of 2
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_0001.pt", "epoch_0002.pt", "latest.pt"]
    with Image.open(run / "samples" / "epoch_0002.png") as grid:  # 2 rows of 6 images of 32 px, 2 px apart
        assert grid.size == (6 * 34 + 2, 2 * 34 + 2)
    assert sorted(p.name for p in (run / "testA").iterdir() if p.suffix == ".png") == ["a0.png", "a1.png"]
    assert "translations of the testA split" in capsys.readouterr().out


@pytest.mark.parametrize("paired", [True, False], ids=["counterparts", "unpaired"])
def test_val_every_logs_the_cycle_terms_and_scores_counterparts_keeping_best_pt(
    unpaired: Path, tmp_path: Path, paired: bool
) -> None:
    """valA/valB of the same names and sizes (as `data unpair` keeps held-out pairs) are scored as pairs and
    pick best.pt; other val images give the cycle terms alone."""
    write_domain(unpaired / "valA", "v", 2, seed=3)
    write_domain(unpaired / "valB", "v" if paired else "w", 2, seed=4)
    run = tmp_path / "run"
    argv = ["train", "--model", "cyclegan", "--data", str(unpaired), "--out", str(run), *TINY_FLAGS, "--no-report"]
    assert main([*argv, "--n-epochs", "1", "--n-epochs-decay", "1", "--val-every", "1"]) == 0
    with (run / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(float(row["val_cycle_A"]) > 0 and float(row["val_cycle_B"]) > 0 for row in rows)
    assert all((row["val_ssim"] != "") == paired and (row["val_l1"] != "") == paired for row in rows)
    assert (run / "checkpoints" / "best.pt").exists() == paired
    state, _ = load_checkpoint(run)
    assert (state["best_scores"] is not None) == paired


def test_val_every_without_a_val_split_is_refused_at_start(unpaired: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    argv = ["train", "--model", "cyclegan", "--data", str(unpaired), "--out", str(run), *TINY_FLAGS, "--val-every", "1"]
    assert main([*argv, "--val-split", "val"]) == 2
    assert f"{unpaired / 'valA'}: folder not found" in capsys.readouterr().err
    assert not (run / "checkpoints").exists()


def test_a_validation_pass_updates_no_weights(unpaired: Path, tmp_path: Path) -> None:
    """Validation translates as at test time (batch statistics, no gradient): G_A and G_B end as they began."""
    write_domain(unpaired / "valA", "v", 2, seed=3)
    write_domain(unpaired / "valB", "v", 2, seed=4)
    config = tiny_cycle_config(unpaired, tmp_path / "run")
    run = build_cycle_state(config, torch.device("cpu"), plan_acceleration(config, start_process("cpu")))
    before = [copy.deepcopy(net.state_dict()) for net in (run.g_a, run.g_b)]
    validation = load_cycle_validation(build_unpaired_dataset(config, unpaired, "val", 4, train=False))
    scores = validate_cycle(run.g_a, run.g_b, validation, torch.device("cpu"), config)
    assert set(scores) == {"cycle_A", "cycle_B", "l1", "psnr", "ssim"}
    for net, state in zip((run.g_a, run.g_b), before):
        assert all(torch.equal(value, state[key]) for key, value in net.state_dict().items())
        assert net.training  # back in training mode


def test_the_free_space_check_counts_the_full_image_pools(unpaired: Path, tmp_path: Path) -> None:
    """What full pools add to a checkpoint file is what the start-up check adds for them (float32 values)."""
    config = tiny_cycle_config(unpaired, tmp_path / "run", in_channels=1)
    config = config.replace("loss", pool_size=5, lambda_identity=0.0)
    run = build_cycle_state(config, torch.device("cpu"), plan_acceleration(config, start_process("cpu")))
    torch.save(run.to_checkpoint(config, epoch=0, batch=0), tmp_path / "empty.pt")
    run.pool_a.query(torch.zeros(5, 1, 32, 32))
    run.pool_b.query(torch.zeros(5, 3, 32, 32))
    torch.save(run.to_checkpoint(config, epoch=0, batch=0), tmp_path / "full.pt")
    added = (tmp_path / "full.pt").stat().st_size - (tmp_path / "empty.pt").stat().st_size
    assert run.checkpointed_values(config) == 5 * (1 + 3) * 32 * 32
    assert 4 * run.checkpointed_values(config) <= added < 1.1 * 4 * run.checkpointed_values(config)
    networks_only = checkpoint_mib(run, config.replace("loss", pool_size=0))
    assert checkpoint_mib(run, config) - networks_only == 2 * 4 * run.checkpointed_values(config) / 2**20


def test_sigterm_mid_epoch_and_resume_match_an_uninterrupted_run(
    unpaired: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_cycle_config(unpaired, tmp_path / "full").replace("optim", n_epochs=1, n_epochs_decay=1)
    full = fit_cyclegan(config, progress=False)

    calls = {"n": 0}

    def step_then_stop(*args: Any, **kwargs: Any) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] == 6:  # iteration 6: mid-epoch 2 (4 per epoch)
            os.kill(os.getpid(), signal.SIGTERM)
        return cycle_train_step(*args, **kwargs)

    stopped = config.replace("train", out=str(tmp_path / "stopped"))
    monkeypatch.setattr(cycle_loop, "cycle_train_step", step_then_stop)
    with pytest.raises(TrainingInterrupted, match="--resume auto"):
        fit_cyclegan(stopped, progress=False)
    state, _ = load_checkpoint(tmp_path / "stopped")
    assert (state["epoch"], state["batch"], state["iteration"]) == (1, 2, 6)

    monkeypatch.setattr(cycle_loop, "cycle_train_step", cycle_train_step)
    resumed = fit_cyclegan(stopped, resume="auto", progress=False)
    assert read_rows(resumed) == read_rows(full)
    final_full, _ = load_checkpoint(full)
    final_resumed, _ = load_checkpoint(resumed)
    for network in ("generator", "generator_b", "discriminator", "discriminator_b"):
        for name, tensor in final_full[network].items():
            assert torch.equal(tensor, final_resumed[network][name]), f"{network} {name}"
    for domain in ("A", "B"):
        pooled = zip(final_full["pools"][domain]["images"], final_resumed["pools"][domain]["images"], strict=True)
        assert all(torch.equal(a, b) for a, b in pooled)


def test_nan_retries_take_cyclegan_back_to_its_last_checkpoint_with_half_the_learning_rate(
    unpaired: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_cycle_config(unpaired, tmp_path / "run").replace("train", save_every_iters=2, nan_retries=1)
    calls = {"n": 0}

    def poisoned_once(*args: Any, **kwargs: Any) -> dict[str, float]:
        calls["n"] += 1
        losses = cycle_train_step(*args, **kwargs)
        return {**losses, "cycle_A": float("nan")} if calls["n"] == 5 else losses  # iteration 5: epoch 2

    monkeypatch.setattr(cycle_loop, "cycle_train_step", poisoned_once)
    run = fit_cyclegan(config, progress=False)
    state, saved = load_checkpoint(run)
    assert state["epoch"] == 3 and saved.optim.lr == config.optim.lr / 2  # the record says what ran
    rows = read_rows(run)
    assert float(rows[0]["lr"]) == config.optim.lr and float(rows[1]["lr"]) == config.optim.lr / 2

    calls["n"] = 0  # no retries left: stops, naming the iteration and the way out
    with pytest.raises(TrainingStopped, match=r"iteration 5 .*--nan-retries N"):
        fit_cyclegan(config.replace("train", out=str(tmp_path / "again"), nan_retries=0), progress=False)


def test_cli_stop_exits_75_and_resume_auto_finishes(
    unpaired: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stop_at_once(*args: Any, **kwargs: Any) -> dict[str, float]:
        os.kill(os.getpid(), signal.SIGTERM)
        return cycle_train_step(*args, **kwargs)

    run = tmp_path / "run"
    argv = ["train", "--model", "cyclegan", "--data", str(unpaired), "--out", str(run), *TINY_FLAGS, "--no-report"]
    monkeypatch.setattr(cycle_loop, "cycle_train_step", stop_at_once)
    assert main([*argv, "--n-epochs", "1", "--n-epochs-decay", "0"]) == 75
    monkeypatch.setattr(cycle_loop, "cycle_train_step", cycle_train_step)
    assert main(["train", "--resume", "auto", "--out", str(run), "--no-report", "--quiet"]) == 0
    state, config = load_checkpoint(run)
    assert state["iteration"] == 4 and config.model.model == "cyclegan" and config.model.base_channels == 4


def test_resuming_a_cyclegan_run_as_pix2pix_is_refused_in_one_line(
    unpaired: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused before anything is loaded (G_A and D_A would load into pix2pix's networks, then the
    optimizers would not, in torch's words)."""
    run = tmp_path / "run"
    argv = ["train", "--model", "cyclegan", "--data", str(unpaired), "--out", str(run), *TINY_FLAGS, "--no-report"]
    assert main([*argv, "--n-epochs", "1", "--n-epochs-decay", "0"]) == 0
    before = {path.name: path.read_bytes() for path in (run / "checkpoints").glob("*.pt")}
    capsys.readouterr()
    resume = ["train", "--resume", "auto", "--out", str(run), "--model", "pix2pix", "--no-report", "--quiet"]
    assert main(resume) == 2
    err = capsys.readouterr().err
    assert "a cyclegan run, which --model pix2pix cannot continue" in err, err
    assert len(err.strip().splitlines()) == 1
    assert {path.name: path.read_bytes() for path in (run / "checkpoints").glob("*.pt")} == before


def test_resuming_a_cyclegan_run_with_a_pix2pix_config_is_refused_in_one_line(
    unpaired: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --config the run's own settings are not read first: its checkpoint's optimizers then do not
    fit pix2pix's, and that is said as a change of networks, not in torch's words."""
    from tests.helpers import write_pairs

    write_pairs(unpaired, "train", 2, size=40)  # a root with both layouts, so the data loads either way
    run = tmp_path / "run"
    assert fit_cyclegan(tiny_cycle_config(unpaired, run).replace("optim", n_epochs=1, n_epochs_decay=0), progress=False)
    pix2pix_config = tmp_path / "pix2pix.json"
    load_checkpoint(run)[1].replace("model", model="pix2pix").save_json(pix2pix_config)
    capsys.readouterr()
    resume = ["train", "--config", str(pix2pix_config), "--resume", "auto", "--out", str(run), "--no-report", "--quiet"]
    assert main(resume) == 2
    err = capsys.readouterr().err
    assert "its networks differ" in err and "model.model: 'cyclegan' -> 'pix2pix'" in err, err
    assert len(err.strip().splitlines()) == 1


# --- translation


def test_checkpoint_translates_a_to_b_by_default_and_b_to_a_on_request(unpaired: Path, tmp_path: Path) -> None:
    # grayscale A, RGB B: each direction's model must see its own channels
    config = tiny_cycle_config(unpaired, tmp_path / "run", in_channels=1).replace("loss", lambda_identity=0.0)
    run = fit_cyclegan(config.replace("optim", n_epochs=1, n_epochs_decay=0), progress=False)
    state, _ = load_checkpoint(run)
    source = torch.rand(1, 1, 32, 32) * 2 - 1
    a_to_b = Pix2Pix.from_checkpoint(run, device="cpu")
    b_to_a = Pix2Pix.from_checkpoint(run, device="cpu", generator="b")
    assert (a_to_b.config.model.in_channels, a_to_b.config.model.out_channels) == (1, 3)
    assert (b_to_a.config.model.in_channels, b_to_a.config.model.out_channels) == (3, 1)
    assert b_to_a.config.data.direction == "BtoA"
    for model, key, channels in ((a_to_b, "generator", 1), (b_to_a, "generator_b", 3)):
        expected = build_generator_for(model.config).eval()
        expected.load_state_dict(state[key])
        batch = source.expand(1, channels, 32, 32)
        output = model.translate_tensor(batch, dropout=False, norm_stats="running")
        assert torch.allclose(output, expected(batch), atol=1e-6)
    with pytest.raises(ValueError, match="'a' .* or 'b'"):
        Pix2Pix.from_checkpoint(run, generator="c")


def test_test_and_export_take_reverse_for_the_b_to_a_generator(unpaired: Path, tmp_path: Path, capsys) -> None:
    config = tiny_cycle_config(unpaired, tmp_path / "run").replace("optim", n_epochs=1, n_epochs_decay=0)
    run = fit_cyclegan(config, progress=False)
    out = tmp_path / "b_to_a"
    assert main(["test", "--checkpoint", str(run), "--input", str(unpaired / "testB"), "--output", str(out),
                 "--reverse", "--quiet"]) == 0  # fmt: skip
    assert len(list(out.glob("*.png"))) == 2
    exported = tmp_path / "b_to_a.onnx"
    assert main(["export", "--checkpoint", str(run), "--format", "onnx", "--out", str(exported), "--reverse"]) == 0
    from pix2pix.inference import load_model

    assert load_model(exported).config.data.direction == "BtoA"
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(exported), "--format", "onnx", "--out", str(tmp_path / "x.onnx"),
                 "--reverse"]) == 2  # fmt: skip
    assert "--reverse needs a CycleGAN run" in capsys.readouterr().err


@pytest.mark.parametrize("reverse", [False, True], ids=["a-to-b", "b-to-a"])
def test_serve_translates_with_the_generator_of_the_direction_asked_for(unpaired, tmp_path, monkeypatch, reverse):
    """`pix2pix serve` on a CycleGAN run: G_A by default, G_B with --reverse; each answers as the test
    command's model of that direction does, and says its direction on /info."""
    import uvicorn
    from fastapi.testclient import TestClient

    config = tiny_cycle_config(unpaired, tmp_path / "run").replace("optim", n_epochs=1, n_epochs_decay=0)
    run = fit_cyclegan(config, progress=False)
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app))
    argv = ["serve", "--checkpoint", str(run), "--port", "0", *(["--reverse"] if reverse else [])]
    assert main(argv) == 0
    image = Image.open(unpaired / ("testB/b0.png" if reverse else "testA/a0.png")).convert("RGB")
    expected = Pix2Pix.load(run, reverse=reverse).translate(image, dropout=False, norm_stats="running")
    body = io.BytesIO()
    image.save(body, format="PNG")
    with TestClient(served["app"]) as client:
        assert client.get("/info").json()["direction"] == ("BtoA" if reverse else "AtoB")
        response = client.post("/translate", content=body.getvalue(), headers={"content-type": "image/png"})
    assert response.status_code == 200
    output = np.asarray(Image.open(io.BytesIO(response.content)), dtype=np.int16)
    assert np.abs(output - np.asarray(expected, dtype=np.int16)).max() <= 1  # onnxruntime vs torch rounding


def test_eval_measures_a_cyclegan_run_on_paired_data_in_either_direction(unpaired: Path, tmp_path: Path) -> None:
    """Paired data laid out the other way round (A | B = photo | label, as the facades release) and a run
    that learned labels -> photos as B -> A: --direction and --reverse say so."""
    from tests.helpers import write_pairs

    config = tiny_cycle_config(unpaired, tmp_path / "run").replace("optim", n_epochs=1, n_epochs_decay=0)
    run = fit_cyclegan(config, progress=False)
    paired = tmp_path / "paired"
    write_pairs(paired, "val", 2, size=32)
    out = tmp_path / "eval"
    arguments = ["--data", str(paired), "--split", "val", "--direction", "AtoB", "--fcn-score", "off", "--quiet"]
    assert main(["eval", "--checkpoint", str(run), *arguments, "--reverse", "--output", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_images"] == 2 and metrics["settings"]["direction"] == "AtoB"
    assert metrics["settings"]["generator"] == "G_B, B -> A (--reverse)"
    # by default each generator's report has a folder of its own: --reverse never replaces G_A's
    common = ["eval", "--checkpoint", str(run), "--data", str(paired), "--split", "val", "--fcn-score", "off"]
    assert main([*common, "--direction", "BtoA", "--quiet"]) == 0
    assert main([*common, "--direction", "AtoB", "--reverse", "--quiet"]) == 0
    forward = json.loads((run / "eval-val" / "metrics.json").read_text())["settings"]
    reverse = json.loads((run / "eval-val-reverse" / "metrics.json").read_text())["settings"]
    assert (forward["generator"], forward["direction"]) == ("G_A, A -> B", "BtoA")
    assert "Training losses" in (run / "eval-val" / "index.html").read_text()  # the CycleGAN terms of log.csv
    assert (reverse["generator"], reverse["direction"]) == ("G_B, B -> A (--reverse)", "AtoB")


def test_eval_of_a_run_on_unpaired_halves_defaults_to_their_pairs_the_generators_way_round(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`data unpair --direction BtoA` put the pairs' B halves in domain A: G_A is measured on the source
    pairs read B -> A, G_B (--reverse) A -> B, with no --data or --direction (or with --data the source);
    a given --direction still wins, with a warning when it feeds the generator the other domain."""
    from tests.helpers import write_pairs

    paired, unpaired = tmp_path / "paired", tmp_path / "unpaired"
    write_pairs(paired, "train", 3, size=40)
    write_pairs(paired, "val", 2, size=40, seed=1)
    assert main(["data", "unpair", str(paired), "--out", str(unpaired), "--direction", "BtoA"]) == 0
    config = tiny_cycle_config(unpaired, tmp_path / "run").replace("optim", n_epochs=1, n_epochs_decay=0)
    run = fit_cyclegan(config, progress=False)
    common = ["eval", "--checkpoint", str(run), "--split", "val", "--fcn-score", "off"]
    assert main([*common, "--quiet"]) == 0
    assert main([*common, "--reverse", "--quiet"]) == 0
    capsys.readouterr()
    assert main([*common, "--direction", "AtoB", "--output", str(tmp_path / "given")]) == 0
    assert "--direction AtoB gives this generator the other domain's images" in capsys.readouterr().err
    assert main([*common, "--data", str(paired), "--reverse", "--output", str(tmp_path / "source"), "--quiet"]) == 0
    folders = {"G_A": run / "eval-val", "G_B": run / "eval-val-reverse", "given": tmp_path / "given"}
    folders["G_B, --data"] = tmp_path / "source"
    settings = {name: json.loads((folder / "metrics.json").read_text())["settings"] for name, folder in folders.items()}
    assert {name: (Path(s["data"]), s["direction"]) for name, s in settings.items()} == {
        "G_A": (paired, "BtoA"),
        "G_B": (paired, "AtoB"),
        "given": (paired, "AtoB"),
        "G_B, --data": (paired, "AtoB"),
    }


def test_b_to_a_of_a_pix2pix_run_is_refused(tiny_dataset: Path, tmp_path: Path) -> None:
    from pix2pix.training.loop import fit
    from tests.helpers import tiny_config

    run = fit(
        tiny_config(tiny_dataset, tmp_path / "run").replace("optim", n_epochs=1, n_epochs_decay=0), progress=False
    )
    with pytest.raises(ValueError, match="not a CycleGAN run"):
        Pix2Pix.from_checkpoint(run, generator="b")


# --- the official networks


@pytest.mark.skipif(not (FIXTURES / "official_parameter_counts.json").is_file(), reason=f"no counts in {FIXTURES}")
def test_default_cyclegan_networks_have_the_official_parameter_counts() -> None:
    counts = json.loads((FIXTURES / "official_parameter_counts.json").read_text())
    config = build_config(build_parser().parse_args(["train", "--model", "cyclegan"]))
    count = lambda network: sum(p.numel() for p in network.parameters())  # noqa: E731
    generator = counts["CycleGAN G resnet_9blocks ngf=64 norm=instance (in 3, out 3)"]
    discriminator = counts["CycleGAN D basic n_layers=3 ndf=64 norm=instance (in 3: sees one image)"]
    reverse = reverse_domains(config)
    assert count(build_generator_for(config)) == count(build_generator_for(reverse)) == generator
    assert count(build_discriminator_for(config)) == count(build_discriminator_for(reverse)) == discriminator


@pytest.mark.skipif(not (FIXTURES / "G_resnet_9blocks_instance_cyclegan.pt").is_file(), reason="no official fixture")
@pytest.mark.parametrize("name", ["latest_net_G_A.pth", "latest_net_G_B.pth"])
def test_an_official_cyclegan_generator_loads_and_reproduces_its_outputs(tmp_path: Path, name: str) -> None:
    """The official CycleGAN saves G_A (A -> B) and G_B (B -> A) in files of their own, one network each."""
    fixture = torch.load(FIXTURES / "G_resnet_9blocks_instance_cyclegan.pt")
    path = tmp_path / name
    torch.save(fixture["state_dict"], path)
    model = Pix2Pix.load(path, device="cpu", runtime="torch")
    assert isinstance(model, Pix2Pix)
    assert (model.config.model.generator, model.config.model.norm) == ("resnet_9blocks", "instance")
    output = model.translate_tensor(fixture["input"], dropout=False, norm_stats="running")
    assert (output - fixture["output_eval"]).abs().max().item() < 1e-5


def test_bad_images_stop_cyclegan_at_start_and_skip_bad_trains_on_the_rest(
    unpaired: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    (unpaired / "trainB" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (unpaired / "trainA" / "text.jpg").write_text("not an image")
    run = tmp_path / "run"
    warned = [flag for flag in TINY_FLAGS if flag != "--quiet"]  # the skips are warnings
    argv = ["train", "--model", "cyclegan", "--data", str(unpaired), "--out", str(run), *warned, "--no-report"]
    argv += ["--n-epochs", "1", "--n-epochs-decay", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "2 unusable file(s)" in err and "corrupt.png" in err and "text.jpg" in err
    assert not (run / "checkpoints").exists()
    assert main([*argv, "--skip-bad"]) == 0
    assert sum("skipping" in record.getMessage() for record in caplog.records) == 2
    state, _ = load_checkpoint(run)
    assert state["iteration"] == 4  # the 4 good B images (3 A): the bad ones left out


def test_the_report_translates_a_held_out_split_of_the_source_domain_first(tmp_path: Path) -> None:
    from pix2pix.cli import report_input

    for folder in ("trainA", "trainB", "testA", "valB"):
        (tmp_path / folder).mkdir()
    config = RunConfig().replace("model", model="cyclegan").replace("data", data=str(tmp_path))
    assert report_input(config) == (tmp_path / "testA", "test", "testA", True)
    (tmp_path / "valA").mkdir()
    assert report_input(config) == (tmp_path / "valA", "val", "valA", True)  # the validation split first
    backwards = config.replace("data", direction="BtoA")
    assert report_input(backwards) == (tmp_path / "valB", "val", "valB", True)
    for folder in ("valA", "testA"):
        (tmp_path / folder).rmdir()
    assert report_input(config) == (tmp_path / "trainA", "train", "trainA", False)  # said to be seen images
