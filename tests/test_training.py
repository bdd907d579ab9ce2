import copy
import csv
import math
import shutil
import sys

import pytest
import torch
from PIL import Image

from pix2pix.checkpoint import load_checkpoint
from pix2pix.config import RunConfig
from pix2pix.data import PairedDataset
from pix2pix.networks import build_discriminator_for, build_generator_for
from pix2pix.nn.modes import set_inference_mode
from pix2pix.training.loop import epoch_order, fit, linear_decay
from pix2pix.training.step import train_step
from pix2pix.visuals import PROGRESS_FRAMES, write_progress_gif
from tests.helpers import logged, tiny_config, write_pairs


def make_models(config: RunConfig):
    torch.manual_seed(0)
    generator, discriminator = build_generator_for(config), build_discriminator_for(config)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    return generator, discriminator, opt_g, opt_d


def test_train_step_updates_both_networks_and_returns_finite_losses(tmp_path):
    config = tiny_config(tmp_path, tmp_path / "run")
    generator, discriminator, opt_g, opt_d = make_models(config)
    before_g = copy.deepcopy(generator.state_dict())
    before_d = copy.deepcopy(discriminator.state_dict())
    source, target = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    losses = train_step(generator, discriminator, opt_g, opt_d, source, target)
    assert set(losses) == {"D_real", "D_fake", "D", "G_GAN", "G_L1", "G"}
    assert all(math.isfinite(v) for v in losses.values())
    assert losses["D"] == pytest.approx(0.5 * (losses["D_real"] + losses["D_fake"]), rel=1e-6)
    assert losses["G"] == pytest.approx(losses["G_GAN"] + 100.0 * losses["G_L1"], rel=1e-6)
    for name, tensor in generator.state_dict().items():
        if tensor.is_floating_point() and "running" not in name:
            assert not torch.equal(tensor, before_g[name]), f"generator {name} did not change"
    changed_d = [name for name, t in discriminator.state_dict().items() if not torch.equal(t, before_d[name])]
    assert changed_d, "discriminator did not change"


def test_l1_only_baseline_trains_without_discriminator(tmp_path):
    config = tiny_config(tmp_path, tmp_path / "run")
    generator, _, opt_g, _ = make_models(config)
    source, target = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    losses = train_step(generator, None, opt_g, None, source, target)
    assert losses["G_GAN"] == 0.0 and "D" not in losses


def test_learning_rate_is_constant_then_decays_linearly():
    factor = linear_decay(n_epochs=3, n_epochs_decay=3)
    assert [factor(e) for e in range(6)] == pytest.approx([1, 1, 1, 0.75, 0.5, 0.25])


def test_epoch_order_is_a_seeded_permutation():
    assert sorted(epoch_order(10, seed=0, epoch=0)) == list(range(10))
    assert epoch_order(10, 0, 0) == epoch_order(10, 0, 0)
    assert epoch_order(10, 0, 0) != epoch_order(10, 0, 1)


def mean_l1(generator, dataset) -> float:
    set_inference_mode(generator, dropout=False, norm_stats="batch")
    with torch.no_grad():
        errors = [(generator(item["source"][None]) - item["target"][None]).abs().mean().item() for item in dataset]
    return sum(errors) / len(errors)


@pytest.mark.slow
def test_short_overfit_run_drives_l1_far_below_its_start(tmp_path):
    """A training loop that does not learn must fail this."""
    data = write_pairs(tmp_path / "data", "train", 4)
    config = tiny_config(data, tmp_path / "run").replace("model", base_channels=16, disc_channels=16, dropout=False)
    config = config.replace("optim", n_epochs=60, n_epochs_decay=15, lr=1e-3).replace(
        "train", sample_every=1000, save_every=1000
    )
    dataset = PairedDataset(data, "train", load_size=32, crop_size=32, flip=False, train=False)
    torch.manual_seed(config.train.seed)
    start = mean_l1(build_generator_for(config), dataset)
    run = fit(config, progress=False)
    state, _ = load_checkpoint(run)
    generator = build_generator_for(config)
    generator.load_state_dict(state["generator"])
    end = mean_l1(generator, dataset)
    assert state["iteration"] == 300
    assert end < 0.25 * start, f"L1 went from {start:.3f} to {end:.3f}"


def read_log(run) -> list[dict[str, str]]:
    with (run / "log.csv").open() as f:
        return list(csv.DictReader(f))


def test_resume_gives_exactly_the_losses_of_an_uninterrupted_run(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "full").replace("optim", n_epochs=1, n_epochs_decay=2)
    full = fit(config, progress=False)

    # the "interrupted" run: its first epoch's checkpoint, resumed in another folder
    resumed_dir = tmp_path / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(full / "checkpoints" / "epoch_0001.pt", resumed_dir / "checkpoints" / "latest.pt")
    shutil.copy(full / "log.csv", resumed_dir / "log.csv")
    resumed = fit(config.replace("train", out=str(resumed_dir)), resume="auto", progress=False)

    full_rows, resumed_rows = read_log(full), read_log(resumed)
    assert [r["epoch"] for r in resumed_rows] == ["1", "2", "3"]
    for a, b in zip(full_rows, resumed_rows):
        for name in ("iteration", "lr", "G_GAN", "G_L1", "D_real", "D_fake"):
            assert a[name] == b[name], f"epoch {a['epoch']} {name}: {a[name]} != {b[name]}"
    final_full, _ = load_checkpoint(full)
    final_resumed, _ = load_checkpoint(resumed)
    for name, tensor in final_full["generator"].items():
        assert torch.equal(tensor, final_resumed["generator"][name]), name


def test_checkpoint_is_self_describing(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "run").replace("model", norm="instance", upsample="resize-conv")
    run = fit(config, progress=False)
    state, loaded = load_checkpoint(run)
    assert loaded == config
    assert state["epoch"] == 2 and state["iteration"] == 12
    assert {"generator", "discriminator", "opt_g", "opt_d", "schedulers", "rng"} <= set(state)
    assert (run / "config.json").exists() and RunConfig.load(run / "config.json") == config
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png", "progress.gif"]
    with Image.open(run / "samples" / "progress.gif") as gif:
        assert gif.n_frames == 2


def test_a_long_runs_progress_animation_keeps_evenly_spaced_frames_from_first_to_last(tmp_path):
    """Rebuilt after every sample epoch, it would otherwise grow a frame, and cost, per epoch."""
    frames = []
    for epoch in range(1, PROGRESS_FRAMES + 13):
        frames.append(tmp_path / f"epoch_{epoch:04d}.png")
        Image.new("RGB", (8, 8), (epoch, 0, 0)).save(frames[-1])
    write_progress_gif(frames, tmp_path / "progress.gif")
    with Image.open(tmp_path / "progress.gif") as gif:
        reds = []
        for index in range(gif.n_frames):
            gif.seek(index)
            reds.append(gif.convert("RGB").getpixel((0, 0))[0])
    assert len(reds) == PROGRESS_FRAMES and reds[0] == 1 and reds[-1] == len(frames)
    assert reds == sorted(set(reds))


def test_validation_logs_metrics_and_keeps_the_best_checkpoint(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "run").replace("train", val_every=1, best_metric="l1")
    run = fit(config, progress=False)
    rows = read_log(run)
    assert all(float(row["val_l1"]) > 0 and float(row["val_ssim"]) <= 1 for row in rows)
    best_epoch = min(rows, key=lambda row: float(row["val_l1"]))["epoch"]
    best, _ = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["epoch"] == int(best_epoch)
    assert best["best_scores"]["l1"] == pytest.approx(min(float(row["val_l1"]) for row in rows))


def test_validation_logs_the_generator_loss_without_touching_the_training(tiny_dataset, tmp_path):
    """val_G_GAN / val_G_L1 / val_G with D in eval mode: the weights, D's batch-norm statistics included,
    end exactly as in a run without validation."""
    config = tiny_config(tiny_dataset, tmp_path / "run").replace("train", val_every=1)
    rows = read_log(fit(config, progress=False))
    for row in rows:
        g_gan, g_l1, g = (float(row[name]) for name in ("val_G_GAN", "val_G_L1", "val_G"))
        assert g_gan > 0 and g_l1 > 0 and g == pytest.approx(g_gan + 100 * g_l1, rel=1e-5)
    plain = fit(config.replace("train", val_every=0, out=str(tmp_path / "plain")), progress=False)
    validated, _ = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    unvalidated, _ = load_checkpoint(plain / "checkpoints" / "latest.pt")
    for network in ("generator", "discriminator"):
        for name, tensor in validated[network].items():
            assert torch.equal(tensor, unvalidated[network][name]), f"{network} {name}"


def test_validation_of_the_l1_baseline_has_no_adversarial_term(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "run").replace("train", val_every=1).replace("loss", gan=False)
    row = read_log(fit(config, progress=False))[-1]
    assert row["val_G_GAN"] == "" and float(row["val_G"]) == pytest.approx(100 * float(row["val_G_L1"]), rel=1e-5)


def test_tensorboard_logs_the_epochs_when_installed(tiny_dataset, tmp_path):
    pytest.importorskip("tensorboard")
    run = fit(tiny_config(tiny_dataset, tmp_path / "run").replace("train", tensorboard=True), progress=False)
    assert any(path.name.startswith("events.out.tfevents") for path in (run / "tensorboard").iterdir())


def test_a_run_without_tensorboard_warns_once_and_logs_to_csv(tiny_dataset, tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if the package were not installed
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)  # imported by an earlier test
    run = fit(tiny_config(tiny_dataset, tmp_path / "run").replace("train", tensorboard=True), progress=False)
    assert logged(caplog, "tensorboard") == [
        "tensorboard is not installed: pip install 'pix2pix[tensorboard]' for TensorBoard logs; "
        "log.csv has the same numbers"
    ]
    assert len(read_log(run)) == 2 and not (run / "tensorboard").exists()
