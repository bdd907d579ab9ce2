"""The engine that translates: onnxruntime for the deterministic mode when installed (`runtime="auto"`),
PyTorch otherwise; the same outputs either way, and the export done once per model (cached)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix.cache import cache_home
from pix2pix.cli import main
from pix2pix.config import DataConfig, ModelConfig, RunConfig
from pix2pix.inference import Pix2Pix, load_model, torch_model
from pix2pix.networks import build_generator_for
from pix2pix.training.loop import fit
from tests.helpers import tiny_config

pytest.importorskip("onnxruntime")
DETERMINISTIC = {"dropout": False, "norm_stats": "running"}


def small_model(runtime: str = "auto", seed: int = 0) -> Pix2Pix:
    torch.manual_seed(seed)
    config = RunConfig(data=DataConfig(crop_size=64, load_size=64), model=ModelConfig(base_channels=8))
    generator = build_generator_for(config)
    with torch.no_grad():  # running statistics that are not the initial ones
        for _ in range(3):
            generator(torch.randn(2, 3, 64, 64))
    return Pix2Pix(generator, config, torch.device("cpu"), runtime=runtime)


def test_auto_runs_the_deterministic_mode_in_onnxruntime_with_eager_outputs():
    model, eager = small_model(), small_model(runtime="torch")
    assert model.runtime_for(**DETERMINISTIC) == "onnxruntime" and eager.runtime_for(**DETERMINISTIC) == "torch"
    for shape in [(1, 3, 64, 64), (3, 3, 128, 64)]:
        batch = torch.rand(shape) * 2 - 1
        fast, reference = model.translate_tensor(batch, **DETERMINISTIC), eager.translate_tensor(batch, **DETERMINISTIC)
        assert (fast - reference).abs().max().item() < 1e-5
        array = model.translate_array(batch.numpy(), **DETERMINISTIC)
        assert np.abs(array - reference.numpy()).max() < 1e-5


@pytest.mark.parametrize(
    "mode", [{"dropout": True, "norm_stats": "running"}, {"dropout": False, "norm_stats": "batch"}]
)
def test_the_papers_protocol_and_dropout_stay_in_torch(mode):
    model = small_model()
    assert model.runtime_for(**mode) == "torch"
    model.runtime = "onnxruntime"
    with pytest.raises(ValueError, match="only the deterministic mode"):
        model.runtime_for(**mode)


def test_without_onnxruntime_auto_falls_back_to_torch(monkeypatch):
    monkeypatch.setattr(torch_model, "onnxruntime_installed", lambda: False)
    assert small_model().runtime_for(**DETERMINISTIC) == "torch"


def test_the_export_is_cached_by_the_weights_digest_and_reused(monkeypatch):
    model = small_model(seed=1)
    model.translate_tensor(torch.zeros(1, 3, 64, 64), **DETERMINISTIC)
    cached = cache_home() / "onnx" / f"{model.digest()}.onnx"
    assert cached.is_file()
    monkeypatch.setattr(torch_model, "export_onnx", lambda *args: pytest.fail("exported again"))
    again = small_model(seed=1)  # another process, the same weights
    assert again.digest() == model.digest() != small_model(seed=2).digest()
    again.translate_tensor(torch.zeros(1, 3, 64, 64), **DETERMINISTIC)


@pytest.fixture
def tiny_run(tiny_dataset, tmp_path):
    return fit(tiny_config(tiny_dataset, tmp_path / "run"), progress=False)


def test_the_cli_takes_runtime_and_says_which_ran(tiny_run, tmp_path, capsys):
    image = tmp_path / "in.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    for runtime, expected in (("auto", "onnxruntime"), ("torch", "torch")):
        out = tmp_path / runtime
        arguments = ["--input", str(image), "--output", str(out), "--dropout", "off", "--norm-stats", "running"]
        assert main(["test", "--checkpoint", str(tiny_run), *arguments, "--runtime", runtime, "--quiet"]) == 0
        assert f"({expected})" in capsys.readouterr().out
    paper = ["--input", str(image), "--output", str(tmp_path / "paper"), "--runtime", "onnxruntime", "--quiet"]
    assert main(["test", "--checkpoint", str(tiny_run), *paper]) == 2
    assert "only the deterministic mode" in capsys.readouterr().err


def test_an_onnx_file_cannot_be_asked_to_run_in_torch(tiny_run, tmp_path):
    from pix2pix.export import export_onnx

    path = export_onnx(Pix2Pix.load(tiny_run, device="cpu"), tmp_path / "g.onnx")
    with pytest.raises(ValueError, match="runs in onnxruntime only"):
        load_model(path, runtime="torch")
