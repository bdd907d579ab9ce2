"""ONNX and TorchScript export: parity with PyTorch, embedded config, the .onnx backend of Pix2Pix.load."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pix2pix.cli import main
from pix2pix.config import DataConfig, ModelConfig, RunConfig
from pix2pix.export import (
    EXPORT_FORMATS,
    TORCHSCRIPT_CONFIG,
    TORCHSCRIPT_EXPORT,
    export_model,
    export_onnx,
    export_torchscript,
)
from pix2pix.export_commands import EXPORT_FORMATS as CLI_FORMATS
from pix2pix.inference import Pix2Pix
from pix2pix.inference.onnx_model import OnnxPix2Pix
from pix2pix.networks import build_generator_for
from pix2pix.training.loop import fit
from tests.helpers import tiny_config, write_pairs

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4
# (batch, height, width): multiples of the stride, square and not
SHAPES_32 = [(1, 32, 32), (2, 64, 32), (3, 32, 96)]
SHAPES_64 = [(1, 64, 64), (2, 128, 64)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny trained U-Net with batch norm (so running statistics are not the defaults)."""
    root = tmp_path_factory.mktemp("export")
    write_pairs(root / "data", "train", 4)
    return fit(tiny_config(root / "data", root / "run"), progress=False)


@pytest.fixture(scope="module")
def trained(run_dir) -> Pix2Pix:
    return Pix2Pix.load(run_dir, device="cpu")


def fresh_model(**model_changes) -> Pix2Pix:
    """An untrained small generator; 64 px gives the U-Net a dropout layer."""
    config = RunConfig(data=DataConfig(load_size=64, crop_size=64), model=ModelConfig(base_channels=8, **model_changes))
    torch.manual_seed(0)
    return Pix2Pix(build_generator_for(config), config, torch.device("cpu"))


def random_batch(shape, channels=3, seed=0) -> torch.Tensor:
    batch, height, width = shape
    return torch.rand(batch, channels, height, width, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def reference(model: Pix2Pix, batch: torch.Tensor, **mode) -> torch.Tensor:
    """Eager PyTorch's output (not the onnxruntime path `runtime="auto"` picks for the deterministic mode)."""
    eager = Pix2Pix(model.generator, model.config, model.device, runtime="torch")
    return eager.translate_tensor(batch, **(mode or {"dropout": False, "norm_stats": "running"}))


MODELS = {
    "trained-unet": (None, SHAPES_32),
    "unet-dropout-resize-conv": ({"upsample": "resize-conv"}, SHAPES_64),
    "encoder-decoder": ({"generator": "encoder_decoder"}, SHAPES_64),
    "resnet-instance-gray": (
        {"generator": "resnet_6blocks", "norm": "instance", "in_channels": 1},
        [(1, 64, 64), (2, 32, 48)],
    ),
}


@pytest.fixture(params=list(MODELS))
def model_and_shapes(request, trained):
    changes, shapes = MODELS[request.param]
    return (trained if changes is None else fresh_model(**changes)), shapes


def test_onnx_matches_pytorch_at_several_sizes(model_and_shapes, tmp_path):
    model, shapes = model_and_shapes
    exported = Pix2Pix.load(export_onnx(model, tmp_path / "g.onnx"))
    assert isinstance(exported, OnnxPix2Pix)
    for i, shape in enumerate(shapes):
        batch = random_batch(shape, model.config.model.in_channels, seed=i)
        difference = (exported.translate_tensor(batch) - reference(model, batch)).abs().max().item()
        assert difference < TOLERANCE, (shape, difference)


def test_torchscript_matches_pytorch_at_several_sizes(model_and_shapes, tmp_path):
    model, shapes = model_and_shapes
    scripted = torch.jit.load(str(export_torchscript(model, tmp_path / "g.ts")))
    for i, shape in enumerate(shapes):
        batch = random_batch(shape, model.config.model.in_channels, seed=i)
        with torch.no_grad():
            difference = (scripted(batch) - reference(model, batch)).abs().max().item()
        assert difference < TOLERANCE, (shape, difference)


@pytest.mark.parametrize(("export_format", "name"), [("onnx", "model.pt"), ("torchscript", "model.onnx")])
def test_export_model_refuses_a_name_that_loaders_take_for_the_other_format(tmp_path, export_format, name):
    with pytest.raises(ValueError, match="the suffix loaders tell formats by"):
        export_model(fresh_model(), tmp_path / name, export_format=export_format)
    assert not (tmp_path / name).exists()


def test_torchscript_can_carry_the_papers_protocol(tmp_path):
    model = fresh_model()  # 64 px U-Net: has dropout and batch norm
    scripted = torch.jit.load(str(export_torchscript(model, tmp_path / "g.ts", dropout=True, norm_stats="batch")))
    batch = random_batch((2, 64, 64))
    torch.manual_seed(3)  # the module draws dropout masks from the global RNG, as translate_tensor(seed=3) does
    with torch.no_grad():
        scripted_output = scripted(batch)
    expected = reference(model, batch, dropout=True, norm_stats="batch", seed=3)
    assert (scripted_output - expected).abs().max().item() < TOLERANCE
    assert (expected - reference(model, batch)).abs().max().item() > 1e-3  # the mode really differs


def test_exports_embed_the_config_and_call_metadata(trained, tmp_path):
    import onnx

    onnx_path = export_onnx(trained, tmp_path / "g.onnx")
    proto = onnx.load(onnx_path)
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    assert RunConfig.from_dict(json.loads(metadata["config"])) == trained.config
    assert (metadata["stride"], metadata["in_channels"], metadata["out_channels"]) == ("32", "3", "3")
    assert (metadata["dropout"], metadata["norm_stats"]) == ("off", "running")
    assert max(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")) >= 17
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] and dims[2] and dims[3]  # batch, height and width are symbolic

    extra_files = {TORCHSCRIPT_CONFIG: "", TORCHSCRIPT_EXPORT: ""}
    torch.jit.load(str(export_torchscript(trained, tmp_path / "g.ts")), _extra_files=extra_files)
    assert RunConfig.from_dict(json.loads(extra_files[TORCHSCRIPT_CONFIG])) == trained.config
    assert json.loads(extra_files[TORCHSCRIPT_EXPORT])["stride"] == "32"


def test_onnx_model_translates_images_like_the_checkpoint(trained, tmp_path):
    exported = Pix2Pix.load(export_onnx(trained, tmp_path / "g.onnx"))
    assert exported.config == trained.config and exported.stride == trained.stride
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8))
    ours = np.asarray(exported.translate(image), dtype=np.int16)
    theirs = np.asarray(trained.translate(image, dropout=False, norm_stats="running"), dtype=np.int16)
    assert ours.shape == (45, 70, 3)
    assert np.abs(ours - theirs).max() <= 1  # float noise may flip a rounding
    batched = exported.translate_batch([image, image])  # in the exported mode unless told otherwise
    assert all(np.array_equal(np.asarray(each, dtype=np.int16), ours) for each in batched)


def test_onnx_refuses_modes_it_cannot_run(trained, tmp_path):
    with pytest.raises(ValueError, match="torchscript"):
        export_onnx(trained, tmp_path / "batch.onnx", norm_stats="batch")
    exported = Pix2Pix.load(export_onnx(trained, tmp_path / "g.onnx"))
    with pytest.raises(ValueError, match="exported with dropout off"):
        exported.translate_tensor(random_batch((1, 32, 32)), dropout=True)
    with pytest.raises(ValueError, match="stride 32"):
        exported.translate_tensor(random_batch((1, 32, 40)))


def test_loading_a_bad_onnx_file_is_a_clear_error(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="garbage.onnx: not a readable ONNX model"):
        Pix2Pix.load(garbage)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        Pix2Pix.load(tmp_path / "missing.onnx")


def test_export_command(run_dir, tmp_path, capsys):
    assert CLI_FORMATS == EXPORT_FORMATS
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(run_dir), "--format", "onnx", "--out", str(out)]) == 0
    assert Pix2Pix.load(out).stride == 32
    ts = tmp_path / "model.ts"
    args = ["export", "--checkpoint", str(run_dir), "--format", "torchscript", "--out", str(ts), "--dropout", "on"]
    assert main([*args, "--norm-stats", "batch"]) == 0 and ts.exists()
    bad = ["export", "--checkpoint", str(run_dir), "--format", "onnx", "--out", str(tmp_path / "b.onnx")]
    assert main([*bad, "--dropout", "on"]) == 2
    assert "pix2pix export: error: ONNX export supports only the deterministic mode" in capsys.readouterr().err
    again = ["export", "--checkpoint", str(out), "--format", "torchscript", "--out", str(tmp_path / "again.ts")]
    assert main(again) == 2
    assert (
        capsys.readouterr().err
        == f"pix2pix export: error: {out}: an ONNX export already; export from the run folder or checkpoint\n"
    )
    in_the_way = tmp_path / "afile"
    in_the_way.write_text("")
    assert main(["export", "--checkpoint", str(run_dir), "--format", "onnx", "--out", str(in_the_way / "x.onnx")]) == 2
    assert capsys.readouterr().err == (
        f"pix2pix export: error: {in_the_way} is a file, so it cannot be the folder the output goes in\n"
    )


def test_an_export_into_an_unwritable_folder_names_the_export_not_a_temporary(run_dir, tmp_path, monkeypatch, capsys):
    def refuse(*args, **kwargs):  # as a read-only folder does (chmod cannot stop root, who runs CI)
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / ".model.onnx.x1y2.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(run_dir), "--format", "onnx", "--out", str(out)]) == 1
    assert capsys.readouterr().err == f"pix2pix export: error: {out}: Permission denied\n"


TORCH_FREE_SCRIPT = """
import sys
sys.modules["torch"] = None  # any `import torch` now fails, as where torch is not installed
import numpy as np
from PIL import Image
from pix2pix import OnnxPix2Pix

inputs = np.load(sys.argv[1])
results = {}
for name in ("rgb", "lab"):
    model = OnnxPix2Pix.from_file(inputs[name + "_model"].item(), device="cpu")
    results[name + "_batch"] = model.translate_array(inputs[name + "_batch"])
    for key in inputs.files:
        if key.startswith(name + "_image"):
            results[key] = np.asarray(model.translate(Image.fromarray(inputs[key])))
np.savez(sys.argv[2], **results)
"""


def test_onnx_model_runs_where_torch_cannot_be_imported(trained, tmp_path):
    """Export with torch here, then translate in a Python without torch: the same outputs."""
    pytest.importorskip("skimage", reason="the Lab model needs scikit-image")
    lab = fresh_model(in_channels=1, out_channels=2)
    lab.config = lab.config.replace("data", color_space="lab")
    rng = np.random.default_rng(0)
    images = {
        "rgb_image_odd": rng.integers(0, 256, (45, 70, 3), dtype=np.uint8),
        "rgb_image_rgba": rng.integers(0, 256, (32, 40, 4), dtype=np.uint8),
        "rgb_image_gray": rng.integers(0, 256, (33, 31), dtype=np.uint8),
        "lab_image_photo": rng.integers(0, 256, (50, 30, 3), dtype=np.uint8),
    }
    inputs = {
        "rgb_model": str(export_onnx(trained, tmp_path / "rgb.onnx")),
        "rgb_batch": random_batch((2, 64, 32)).numpy(),
        "lab_model": str(export_onnx(lab, tmp_path / "lab.onnx")),
        "lab_batch": random_batch((2, 64, 64), channels=1).numpy(),
        **images,
    }
    np.savez(tmp_path / "inputs.npz", **inputs)
    script = tmp_path / "torch_free.py"
    script.write_text(TORCH_FREE_SCRIPT)
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "inputs.npz"), str(tmp_path / "outputs.npz")],
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    outputs = np.load(tmp_path / "outputs.npz")
    for model, name in ((trained, "rgb"), (lab, "lab")):
        expected = reference(model, torch.from_numpy(inputs[f"{name}_batch"])).numpy()
        assert np.abs(outputs[f"{name}_batch"] - expected).max() < TOLERANCE
        for key, pixels in images.items():
            if key.startswith(name):
                torch_image = model.translate(Image.fromarray(pixels), dropout=False, norm_stats="running")
                difference = np.abs(outputs[key].astype(int) - np.asarray(torch_image, int)).max()
                assert difference <= 1, (key, difference)  # float noise may flip a rounding


def test_torch_free_bilinear_resize_matches_torch_interpolate():
    """Lab outputs are resized in numpy (inference.translator), as F.interpolate would do it in torch."""
    from pix2pix.inference import translator

    rng = np.random.default_rng(0)
    ab_map = torch.from_numpy(rng.uniform(-1, 1, (2, 16, 12)).astype(np.float32))
    for height, width in ((45, 37), (16, 12), (7, 5), (16, 30)):  # up, same, down, mixed
        expected = F.interpolate(ab_map[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        ours = translator.resize_bilinear(ab_map.numpy(), height, width)
        assert ours.shape == (2, height, width) and np.abs(ours - expected.numpy()).max() < 1e-5


def test_onnx_models_batch_exactly(trained, tmp_path):
    exported = Pix2Pix.load(export_onnx(trained, tmp_path / "g.onnx"))
    assert exported.batch_coupling(dropout=False, norm_stats="running") is None
    sources = list(random_batch((3, 32, 64)).numpy())
    batched = exported.translate_many(sources)
    for source, output in zip(sources, batched, strict=True):
        assert np.abs(output - exported.translate_many([source])[0]).max() < 1e-5


def test_summary_reads_an_onnx_export_and_test_explains_a_torchscript_one(trained, tmp_path, capsys):
    onnx_path = export_onnx(trained, tmp_path / "model.onnx")
    assert main(["summary", "--checkpoint", str(onnx_path), "--no-layers"]) == 0
    assert "Generator unet (ngf 8" in capsys.readouterr().out
    script_path = export_torchscript(trained, tmp_path / "model.ts")
    output = tmp_path / "out"
    assert main(["test", "--checkpoint", str(script_path), "--input", str(tmp_path), "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert "a TorchScript export" in err and "torch.jit.load" in err and len(err.strip().splitlines()) == 1


def test_test_and_eval_run_an_onnx_export_in_its_own_mode_and_a_checkpoint_in_the_papers(run_dir, trained, tmp_path):
    onnx_path = export_onnx(trained, tmp_path / "g.onnx")
    data = str(run_dir.parent / "data")
    for model, mode in ((onnx_path, ("off", "running")), (run_dir, ("on", "batch"))):  # no mode flags given
        output = tmp_path / f"test-{Path(model).name}"
        argv = ["test", "--checkpoint", str(model), "--input", data, "--split", "train", "--output", str(output)]
        assert main([*argv, "--quiet"]) == 0
        assert f"dropout {mode[0]}, norm stats {mode[1]}" in (output / "index.html").read_text()
        folder = tmp_path / f"eval-{Path(model).name}"
        argv = ["eval", "--checkpoint", str(model), "--data", data, "--split", "train", "--output", str(folder)]
        assert main([*argv, "--fcn-score", "off", "--quiet"]) == 0
        settings = json.loads((folder / "metrics.json").read_text())["settings"]
        assert (settings["dropout"], settings["norm stats"]) == mode
