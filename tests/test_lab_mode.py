"""Lab colorization mode (`--color-space lab`): L -> ab training, RGB outputs, samples and reports."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix.cli import main
from pix2pix.data import PairedDataset
from pix2pix.data.tensors import image_to_lab_tensors, lab_batch_to_rgb
from pix2pix.inference import Pix2Pix
from pix2pix.training.loop import fit
from tests.helpers import tiny_config

pytest.importorskip("skimage", reason="Lab conversions need scikit-image (the [data] extra)")


def lab_config(data: Path, out: Path, **train_changes):
    config = tiny_config(data, out, **train_changes).replace("data", color_space="lab")
    return config.replace("model", in_channels=1, out_channels=2)


@pytest.fixture
def lab_run(tiny_dataset, tmp_path) -> Path:
    return fit(lab_config(tiny_dataset, tmp_path / "run", val_every=1), progress=False)


def lightness_of(image: Image.Image) -> np.ndarray:
    return image_to_lab_tensors(image)[0].numpy()[0] * 50 + 50  # L in [0, 100]


def test_dataset_gives_l_and_ab_of_the_same_jittered_target(tiny_dataset):
    options = {"load_size": 40, "crop_size": 32, "flip": True, "in_channels": 1, "out_channels": 2}
    lab = PairedDataset(tiny_dataset, "train", color_space="lab", seed=3, **options)
    rgb = PairedDataset(tiny_dataset, "train", seed=3, **{**options, "in_channels": 3, "out_channels": 3})
    for index in range(len(lab)):
        item = lab[index]
        assert item["source"].shape == (1, 32, 32) and item["target"].shape == (2, 32, 32)
        # L + ab rebuild the jittered target photo (B, AtoB) of the RGB dataset: same crop and flip
        rebuilt = lab_batch_to_rgb(item["source"][None], item["target"][None])[0]
        assert (rebuilt - rgb[index]["target"]).abs().max() <= 2 / 127.5 + 1e-6


def test_lab_run_trains_and_colorizes_keeping_the_luminance(lab_run):
    assert (lab_run / "samples" / "epoch_0002.png").is_file()
    with (lab_run / "log.csv").open() as f:
        assert all(0 < float(row["val_ssim"]) <= 1 for row in csv.DictReader(f))  # validation measured in RGB
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(60, 200, (45, 37, 3), dtype=np.uint8))  # odd size, mid tones
    colorized = Pix2Pix.load(lab_run, device="cpu").translate(photo)
    assert colorized.mode == "RGB" and colorized.size == photo.size
    # the output keeps the input's L to within 8-bit rounding (L units: one gray level is about 0.4)
    assert np.abs(lightness_of(colorized) - lightness_of(photo)).max() < 0.5
    gray = Pix2Pix.load(lab_run, device="cpu").translate(photo.convert("L"))
    assert gray.mode == "RGB" and gray.size == photo.size


def test_test_command_writes_rgb_outputs_and_a_page(lab_run, tiny_dataset, tmp_path):
    out = tmp_path / "results"
    argv = ["test", "--checkpoint", str(lab_run), "--input", str(tiny_dataset), "--output", str(out)]
    assert main([*argv, "--split", "test", "--device", "cpu"]) == 0
    assert (out / "index.html").is_file()
    for name in ("0", "1", "2"):
        output, source = Image.open(out / f"{name}.png"), Image.open(out / "inputs" / f"{name}.png")
        target = Image.open(out / "targets" / f"{name}.png")
        assert output.mode == source.mode == target.mode == "RGB"
        assert output.size == target.size == (32, 32)
        gray = np.asarray(source, int)
        assert np.abs(gray - gray[..., :1]).max() <= 1  # the input is the gray L of the target photo


def test_evaluation_measures_a_lab_run_in_rgb(lab_run, tiny_dataset, tmp_path):
    from pix2pix.evaluate.pipeline import evaluate_checkpoint

    evaluation = evaluate_checkpoint(
        str(lab_run), str(tmp_path / "eval"), device="cpu", progress=False
    )  # str paths too
    assert len(evaluation.rows) == 3 and 0 < evaluation.summary["ssim"]["mean"] <= 1
    assert (tmp_path / "eval" / "index.html").is_file()


def test_onnx_export_of_a_lab_model_colorizes(lab_run, tmp_path):
    pytest.importorskip("onnxruntime")
    from pix2pix.export import export_onnx

    model = Pix2Pix.load(lab_run, device="cpu")
    exported = Pix2Pix.load(export_onnx(model, tmp_path / "g.onnx"), device="cpu")
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    expected = model.translate(photo, dropout=False, norm_stats="running")
    assert np.abs(np.asarray(exported.translate(photo), int) - np.asarray(expected, int)).max() <= 2


@pytest.mark.parametrize("channels", [("3", "3"), ("1", "3")])
def test_lab_mode_with_wrong_channels_is_a_one_line_error(tiny_dataset, tmp_path, capsys, channels):
    argv = ["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"), "--color-space", "lab"]
    code = main([*argv, "--in-channels", channels[0], "--out-channels", channels[1], "--crop-size", "32"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "lab" in err and "in_channels 1 and out_channels 2" in err


def test_color_space_is_checked_by_the_dataset(tiny_dataset):
    with pytest.raises(ValueError, match="color space"):
        PairedDataset(tiny_dataset, "train", color_space="hsv")
    with pytest.raises(ValueError, match="out_channels 2"):
        PairedDataset(tiny_dataset, "train", color_space="lab", in_channels=1, out_channels=3)
    assert torch.is_tensor(PairedDataset(tiny_dataset, "train", crop_size=32, load_size=32)[0]["source"])


def test_colorize_recipe_is_a_valid_lab_config():
    from pix2pix.cli import build_parser
    from pix2pix.flags import build_config

    config = build_config(build_parser().parse_args(["train", "--config", "colorize"]))
    assert config.data.color_space == "lab" and (config.model.in_channels, config.model.out_channels) == (1, 2)
