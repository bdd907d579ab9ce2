"""The engine that translates: onnxruntime for the deterministic mode when installed (`runtime="auto"`),
PyTorch otherwise; the same outputs either way, and the export done once per model (cached)."""

from __future__ import annotations

import functools
import os

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


@pytest.mark.parametrize("seed", [0, 5, None])
@pytest.mark.parametrize("dropout", [True, False])
@pytest.mark.parametrize("generator", ["unet", "resnet_6blocks"])
def test_the_papers_protocol_runs_in_onnxruntime_with_torchs_own_dropout_draws(generator, dropout, seed):
    """Batch statistics of one image = instance norm; the masks are the eager network's seeded draws."""
    changes = {"generator": generator, "norm": "instance" if generator != "unet" else "batch"}
    torch.manual_seed(0)
    config = RunConfig(data=DataConfig(crop_size=64, load_size=64), model=ModelConfig(base_channels=8, **changes))
    network = build_generator_for(config)
    model = Pix2Pix(network, config, torch.device("cpu"))
    eager = Pix2Pix(network, config, torch.device("cpu"), runtime="torch")
    mode = {"dropout": dropout, "norm_stats": "batch"}
    assert model.runtime_for(**mode) == "onnxruntime"
    batch = torch.rand(1, 3, 64, 128) * 2 - 1
    torch.manual_seed(11)  # seed None draws from the global RNG: the same state for both
    fast = model.translate_tensor(batch, **mode, seed=seed)
    torch.manual_seed(11)
    reference = eager.translate_tensor(batch, **mode, seed=seed)
    assert (fast - reference).abs().max().item() < 1e-5
    if dropout and seed is not None:  # another seed, another draw: the masks are really fed
        assert (model.translate_tensor(batch, **mode, seed=seed + 1) - fast).abs().max().item() > 1e-3


def test_a_batch_with_batch_statistics_stays_in_torch_where_the_batch_shares_them():
    model, eager = small_model(), small_model(runtime="torch")
    batch = torch.rand(2, 3, 64, 64) * 2 - 1
    mode = {"dropout": False, "norm_stats": "batch"}
    assert torch.equal(model.translate_tensor(batch, **mode), eager.translate_tensor(batch, **mode))


def test_dropout_with_running_statistics_stays_in_torch():
    model = small_model()
    assert model.runtime_for(dropout=True, norm_stats="running") == "torch"
    model.runtime = "onnxruntime"
    with pytest.raises(ValueError, match="cannot run dropout with running statistics"):
        model.runtime_for(dropout=True, norm_stats="running")


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
    stochastic = ["--input", str(image), "--output", str(tmp_path / "s"), "--norm-stats", "running", "--quiet"]
    assert main(["test", "--checkpoint", str(tiny_run), *stochastic, "--runtime", "onnxruntime"]) == 2
    assert "cannot run dropout with running statistics" in capsys.readouterr().err


def test_an_onnx_file_cannot_be_asked_to_run_in_torch(tiny_run, tmp_path):
    from pix2pix.export import export_onnx

    path = export_onnx(Pix2Pix.load(tiny_run, device="cpu"), tmp_path / "g.onnx")
    with pytest.raises(ValueError, match="runs in onnxruntime only"):
        load_model(path, runtime="torch")


def test_translate_batch_gives_each_image_what_it_gets_alone_grouping_by_size():
    model = small_model()
    rng = np.random.default_rng(0)
    sizes = [(64, 64), (64, 64), (96, 64), (64, 64), (96, 64)]  # resize_and_crop: every one becomes 64x64
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)) for w, h in sizes]
    batched = model.translate_batch(images, **DETERMINISTIC)
    for image, result in zip(images, batched):
        alone = model.translate(image, **DETERMINISTIC)
        assert result.size == image.size
        assert np.abs(np.asarray(result, int) - np.asarray(alone, int)).max() <= 1  # float rounding at most
    with pytest.raises(ValueError, match="cannot translate a batch in this mode: batch norm"):
        model.translate_batch(images, dropout=False, norm_stats="batch")


def test_folders_are_translated_eight_images_a_pass_in_the_deterministic_mode(tmp_path, monkeypatch):
    from pix2pix.inference import translate_to_folder

    model = small_model()
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(11):
        Image.fromarray(np.full((64, 64, 3), 20 * i, np.uint8)).save(folder / f"{i:02d}.png")
    passes = []
    translate_many = model.translate_many
    monkeypatch.setattr(
        model, "translate_many", lambda sources, **mode: passes.append(len(sources)) or translate_many(sources, **mode)
    )
    translate_to_folder(model, folder, tmp_path / "fast", progress=False, **DETERMINISTIC)
    assert passes == [8, 3]
    passes.clear()
    translate_to_folder(model, folder, tmp_path / "paper", progress=False)  # batch statistics: one by one
    assert passes == [1] * 11
    assert sorted(p.name for p in (tmp_path / "fast").glob("*.png")) == [f"{i:02d}.png" for i in range(11)]


def test_auto_falls_back_to_torch_in_one_warning_when_the_export_fails(monkeypatch, caplog):
    def read_only(*args):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(torch_model, "export_onnx", read_only)
    model, eager = small_model(seed=3), small_model(seed=3, runtime="torch")
    batch = torch.rand(1, 3, 64, 64) * 2 - 1
    for _ in range(2):
        assert torch.equal(
            model.translate_tensor(batch, **DETERMINISTIC), eager.translate_tensor(batch, **DETERMINISTIC)
        )
    warnings = [r.getMessage() for r in caplog.records if "onnxruntime unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "Read-only file system" in warnings[0]
    model.runtime, model._onnx_failed = "onnxruntime", False  # insisting: the failure is the caller's to see
    with pytest.raises(OSError, match="Read-only"):
        model.translate_tensor(batch, **DETERMINISTIC)


@pytest.mark.parametrize("mode", [DETERMINISTIC, {"dropout": True, "norm_stats": "batch"}])
def test_a_bad_batch_is_refused_in_one_line_and_leaves_onnxruntime_on(mode, caplog):
    model = small_model()
    for shape, message in [
        ((1, 1, 64, 64), r"expected a batch of shape \(B, 3, H, W\), got \(1, 1, 64, 64\)"),
        ((3, 64, 64), r"expected a batch of shape \(B, 3, H, W\), got \(3, 64, 64\)"),
        ((1, 3, 64, 48), "input size 64x48 \\(HxW\\) is not divisible by the stride 64"),
    ]:
        with pytest.raises(ValueError, match=message):
            model.translate_array(np.zeros(shape, np.float32), **mode)
        with pytest.raises(ValueError, match=message):
            model.translate_tensor(torch.zeros(shape), **mode)
    assert not [r for r in caplog.records if "onnxruntime unavailable" in r.getMessage()]
    assert not model._onnx_failed and model.runtime_for(**mode) == "onnxruntime"


def test_a_tensor_of_another_float_type_is_translated_in_fp32_and_an_integer_one_refused():
    model, batch = small_model(), torch.rand(1, 3, 64, 64) * 2 - 1
    reference = model.translate_tensor(batch, **DETERMINISTIC)
    for dtype in (torch.float64, torch.bfloat16):
        output = model.translate_tensor(batch.to(dtype), **DETERMINISTIC)
        assert output.dtype == torch.float32 and (output - reference).abs().max().item() < 0.1
    with pytest.raises(ValueError, match="expected a float batch in \\[-1, 1\\], got torch.uint8"):
        model.translate_tensor(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), **DETERMINISTIC)


def test_a_folder_is_translated_from_string_paths_and_zero_samples_are_refused(tmp_path):
    from pix2pix.inference.folders import translate_to_folder

    (tmp_path / "in").mkdir()
    Image.new("RGB", (40, 30), "gray").save(tmp_path / "in" / "a.png")
    model = small_model()
    page = translate_to_folder(model, str(tmp_path / "in"), str(tmp_path / "out"), progress=False, **DETERMINISTIC)
    assert page == tmp_path / "out" / "index.html" and (tmp_path / "out" / "a.png").is_file()
    with pytest.raises(ValueError, match="samples must be 1 or more, got 0"):
        translate_to_folder(model, tmp_path / "in", tmp_path / "out", samples=0, progress=False)


def test_a_damaged_cached_export_is_exported_again_and_versions_are_in_the_key(monkeypatch):
    model = small_model(seed=4)
    path = cache_home() / "onnx" / f"{model.digest()}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"cut short")
    output = model.translate_tensor(torch.zeros(1, 3, 64, 64), **DETERMINISTIC)
    assert output.shape == (1, 3, 64, 64) and path.stat().st_size > 1000
    digest = model.digest()
    monkeypatch.setattr(torch_model, "__version__", "99.0")
    assert model.digest() != digest  # a new release never reuses an older release's export


def test_a_new_export_prunes_the_least_recently_used_ones_beyond_the_cache_bound(tmp_path, monkeypatch):
    monkeypatch.setenv("PIX2PIX_HOME", str(tmp_path))
    folder = tmp_path / "onnx"
    folder.mkdir()
    for age, name in enumerate(["newest", "used", "oldest"]):
        (folder / f"{name}.onnx").write_bytes(b"x" * 1000)
        os.utime(folder / f"{name}.onnx", (1e9 - age * 1000, 1e9 - age * 1000))
    (folder / "notes.txt").write_bytes(b"x" * 5000)  # not an export: never pruned
    monkeypatch.setattr(torch_model, "ONNX_CACHE_BYTES", 2500)
    used = small_model(seed=5)
    used.translate_tensor(torch.zeros(1, 3, 64, 64), **DETERMINISTIC)
    export = folder / f"{used.digest()}.onnx"
    # the new export is kept whatever its size; then the newest old ones up to the bound: none fits beside it
    assert sorted(path.name for path in folder.iterdir()) == sorted([export.name, "notes.txt"])
    # an export that is opened again counts as recently used
    monkeypatch.setattr(torch_model, "ONNX_CACHE_BYTES", 2 * export.stat().st_size + 500)  # two exports
    os.utime(export, (1e9 - 5000, 1e9 - 5000))
    small_model(seed=5).translate_tensor(torch.zeros(1, 3, 64, 64), **DETERMINISTIC)  # opens it: marks it used
    (folder / "older.onnx").write_bytes(b"x" * 1000)
    os.utime(folder / "older.onnx", (1e9, 1e9))
    small_model(seed=6).translate_tensor(torch.zeros(1, 3, 64, 64), **DETERMINISTIC)  # a new export prunes
    assert export.exists() and not (folder / "older.onnx").exists()


def translated_with_seed(model: Pix2Pix, batch: torch.Tensor, mode: dict, seed: int) -> tuple[int, torch.Tensor]:
    return seed, model.translate_tensor(batch, **mode, seed=seed)


def test_seeded_translations_from_several_threads_each_get_their_own_draws():
    """serve's threads: a seed's dropout draw must not depend on what the other threads do at that moment."""
    from concurrent.futures import ThreadPoolExecutor

    model = small_model()
    eager = small_model(runtime="torch")
    batch = torch.rand(1, 3, 64, 64) * 2 - 1
    mode = {"dropout": True, "norm_stats": "batch"}
    expected = {seed: eager.translate_tensor(batch, **mode, seed=seed) for seed in range(4)}
    for engine in (model, eager):
        translate = functools.partial(translated_with_seed, engine, batch, mode)
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(translate, [0, 1, 2, 3] * 6))
        assert all((output - expected[seed]).abs().max().item() < 1e-5 for seed, output in results)
