from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import Pix2Pix
from pix2pix.cli import main
from pix2pix.training.loop import fit
from tests.helpers import tiny_config, write_pairs

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "official"


def test_python_api_translates_a_pil_image_at_its_own_size(tiny_dataset, tmp_path):
    run = fit(tiny_config(tiny_dataset, tmp_path / "run"), progress=False)
    model = Pix2Pix.load(run)
    image = Image.new("RGB", (50, 30), (200, 10, 10))
    out = model.translate(image)
    assert out.size == (50, 30) and out.mode == "RGB"
    # save -> load gives the same outputs
    again = Pix2Pix.load(run / "checkpoints" / "latest.pt").translate(image)
    assert np.array_equal(np.asarray(out), np.asarray(again))


def test_grayscale_input_and_output(tmp_path):
    data = write_pairs(tmp_path / "data", "train", 3)
    config = tiny_config(data, tmp_path / "run").replace("model", in_channels=1, out_channels=1)
    run = fit(config, progress=False)
    out = Pix2Pix.load(run).translate(Image.new("RGB", (32, 32), (0, 255, 0)))
    assert out.mode == "L" and out.size == (32, 32)


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"official fixtures not found at {FIXTURES}")
@pytest.mark.parametrize("name", ["G_unet_256_batch", "G_unet_128_instance_gray_in", "G_resnet_9blocks_batch"])
def test_official_state_dict_reproduces_official_outputs(tmp_path, name):
    fixture = torch.load(FIXTURES / f"{name}.pt")
    path = tmp_path / "latest_net_G.pth"
    torch.save(fixture["state_dict"], path)  # what the official code writes: the bare state dict
    model = Pix2Pix.load(path, device="cpu")
    evaluated = model.translate_tensor(fixture["input"], dropout=False, norm_stats="running")
    assert (evaluated - fixture["output_eval"]).abs().max().item() < 1e-5
    batch_stats = model.translate_tensor(fixture["input"], dropout=False, norm_stats="batch")
    assert (batch_stats - fixture["output_batchstats_nodropout"]).abs().max().item() < 1e-5
    # translating must not change the model (batch statistics do not update the running averages)
    assert (model.translate_tensor(fixture["input"], dropout=False, norm_stats="running") - evaluated).abs().max() == 0


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"official fixtures not found at {FIXTURES}")
def test_cli_test_accepts_an_official_checkpoint(tmp_path):
    fixture = torch.load(FIXTURES / "G_unet_256_batch.pt")
    torch.save(fixture["state_dict"], tmp_path / "latest_net_G.pth")
    Image.new("RGB", (300, 200), (10, 200, 30)).save(tmp_path / "input.png")
    argv = [
        "test",
        "--checkpoint",
        str(tmp_path / "latest_net_G.pth"),
        "--input",
        str(tmp_path / "input.png"),
        "--output",
        str(tmp_path / "out"),
        "--netg",
        "unet_256",
        "--norm",
        "batch",
        "--quiet",
    ]
    assert main(argv) == 0
    assert Image.open(tmp_path / "out" / "input.png").size == (300, 200)


def test_loading_a_file_that_is_not_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    argv = [
        "test",
        "--checkpoint",
        str(tmp_path / "junk.pt"),
        "--input",
        str(tmp_path),
        "--output",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 2
    assert "junk.pt" in capsys.readouterr().err
