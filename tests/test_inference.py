import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pix2pix
from pix2pix import Pix2Pix
from pix2pix.cli import main
from pix2pix.config import DataConfig, ModelConfig, RunConfig
from pix2pix.networks import build_generator_for
from pix2pix.training.loop import fit
from tests.helpers import tiny_config, write_pairs

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "official"


def test_python_api_translates_a_pil_image_at_its_own_size(tiny_dataset, tmp_path):
    run = fit(tiny_config(tiny_dataset, tmp_path / "run"), progress=False)
    model = Pix2Pix.load(run)
    image = Image.new("RGB", (50, 30), (200, 10, 10))
    out = model.translate(image)
    assert out.size == (50, 30) and out.mode == "RGB"
    # save -> load gives the same outputs, from the checkpoint or the run's checkpoints folder
    for saved in (run / "checkpoints" / "latest.pt", run / "checkpoints"):
        again = Pix2Pix.load(saved).translate(image)
        assert np.array_equal(np.asarray(out), np.asarray(again))


def test_an_edited_checkpoint_is_refused_naming_its_file(tiny_dataset, tmp_path):
    run = fit(tiny_config(tiny_dataset, tmp_path / "run"), progress=False)
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    without_weights = tmp_path / "without_weights.pt"
    torch.save({key: value for key, value in state.items() if key != "generator"}, without_weights)
    with pytest.raises(ValueError, match=r"without_weights\.pt: a pix2pix checkpoint without its generator's weights"):
        Pix2Pix.load(without_weights)
    other_width = tmp_path / "other_width.pt"
    config = dict(state["config"], model={**state["config"]["model"], "base_channels": 16})
    torch.save(dict(state, config=config), other_width)
    with pytest.raises(ValueError, match=r"other_width\.pt: the generator's weights do not fit .*size mismatch"):
        Pix2Pix.load(other_width)


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


def small_model(**model_changes) -> Pix2Pix:
    """Untrained, 64 px: the U-Net has batch norm and a dropout layer; batch norm gets non-default
    running statistics, so the two norm modes really differ."""
    config = RunConfig(data=DataConfig(load_size=64, crop_size=64), model=ModelConfig(base_channels=8, **model_changes))
    torch.manual_seed(0)
    generator = build_generator_for(config)
    for module in generator.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    return Pix2Pix(generator, config, torch.device("cpu"))


@pytest.mark.parametrize(
    "changes, dropout, norm_stats, coupled",
    [
        ({}, False, "running", None),
        ({}, False, "batch", "batch norm"),
        ({}, True, "running", "dropout"),
        ({"norm": "instance"}, False, "batch", None),  # per-image statistics in every mode
        ({"generator": "resnet_6blocks", "norm": "instance", "dropout": False}, True, "batch", None),
    ],
    ids=["eval", "batch-stats", "dropout", "instance-norm", "nothing-to-couple"],
)
def test_batching_is_exact_exactly_when_batch_coupling_says_so(changes, dropout, norm_stats, coupled):
    """The server batches requests only when `batch_coupling` is None: then a batch must give every
    image what it gets alone; otherwise the reason must be real (the batch changes the results)."""
    model = small_model(**changes)
    mode = {"dropout": dropout, "norm_stats": norm_stats, "seed": 0}
    reason = model.batch_coupling(dropout=dropout, norm_stats=norm_stats)
    assert (reason is None) if coupled is None else (coupled in reason)
    generator = torch.Generator().manual_seed(1)
    sources = list((torch.rand(4, 3, 64, 64, generator=generator) * 2 - 1).numpy())
    batched = model.translate_many(sources, **mode)
    alone = [model.translate_many([source], **mode)[0] for source in sources]
    difference = max(np.abs(b - a).max() for b, a in zip(batched, alone, strict=True))
    # batched convolutions may round differently (~1e-7); a coupled mode changes results by more
    assert difference < 1e-5 if coupled is None else difference > 1e-5


def test_translate_many_gives_the_images_of_translate():
    model = small_model()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    source = model.prepare_source(image)
    assert source.shape == (3, 64, 64) and source.dtype == np.float32  # resize_and_crop: the square crop size
    (output,) = model.translate_many([source, source], dropout=False, norm_stats="running")[:1]
    expected = model.translate(image, dropout=False, norm_stats="running")
    assert np.array_equal(np.asarray(model.finish_output(output, image)), np.asarray(expected))


def test_importing_the_package_does_not_import_torch():
    code = "import sys, pix2pix; from pix2pix import RunConfig, OnnxPix2Pix; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
    assert pix2pix.Pix2Pix is Pix2Pix  # resolved on first use
    with pytest.raises(AttributeError, match="no attribute 'Pix2Pixx'"):
        _ = pix2pix.Pix2Pixx


@pytest.mark.parametrize("dropout", [False, True])
def test_running_statistics_translate_through_folded_batch_norm_with_the_same_result(dropout):
    from pix2pix.nn.modes import run_for_inference

    torch.manual_seed(0)
    config = RunConfig(model=ModelConfig(base_channels=8), data=DataConfig(crop_size=32, load_size=32))
    generator = build_generator_for(config)
    generator.train()
    for _ in range(3):  # running statistics that are not the initial ones
        generator(torch.randn(2, 3, 32, 32))
    model = Pix2Pix(generator, config, torch.device("cpu"), runtime="torch")
    batch = torch.randn(2, 3, 32, 32)
    expected = run_for_inference(generator, batch, dropout=dropout, norm_stats="running", seed=3)
    fast = model.translate_tensor(batch, dropout=dropout, norm_stats="running", seed=3)
    torch.testing.assert_close(fast, expected, rtol=0, atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.folded_generator().modules())
    paper = model.translate_tensor(batch, dropout=dropout, norm_stats="batch", seed=3)  # unfolded: batch stats
    assert torch.equal(paper, run_for_inference(generator, batch, dropout=dropout, norm_stats="batch", seed=3))


@pytest.mark.parametrize("preprocess", ["none", "crop"])
def test_a_resnet_translates_an_image_smaller_than_twice_its_stride(preprocess):
    """Its residual blocks reflection-pad maps of H/4 x W/4 pixels, which needs two pixels a side."""
    data = DataConfig(preprocess=preprocess, load_size=64, crop_size=64)
    model = ModelConfig(generator="resnet_6blocks", norm="instance", dropout=False, base_channels=8)
    config = RunConfig(data=data, model=model)
    translator = Pix2Pix(build_generator_for(config), config, torch.device("cpu"), runtime="torch")
    assert translator.translate(Image.new("RGB", (5, 3), (9, 99, 199))).size == (5, 3)


@pytest.mark.parametrize("runtime", ["torch", "auto"])
def test_a_diverged_generator_is_refused_rather_than_saved_as_black_pixels(runtime):
    model = small_model()
    with torch.no_grad():
        model.generator.encoder[0][0].weight.fill_(float("nan"))
    model.runtime = runtime
    with pytest.raises(ValueError, match="output holds NaN or inf: its weights have diverged"):
        model.translate(Image.new("RGB", (64, 64), (9, 99, 199)), dropout=False, norm_stats="running")
