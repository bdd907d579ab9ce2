"""`pretrained:NAME` and `pix2pix models`, against a local HTTP server serving official-format state dicts:
download, resume, the recorded SHA-256, offline errors, and translation identical to the file itself."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix.cli import main
from pix2pix.inference import Pix2Pix, load_model
from pix2pix.inference.pretrained import URL_VARIABLE, cached_path, digest_path, download_pretrained
from pix2pix.nn import UNetGenerator
from pix2pix.serve.app import describe_model
from tests.test_official import FIXTURES, to_official_unet


def official_file_bytes() -> bytes:
    """A small unet_256 (ngf 4) saved as the official code saves a generator: a state dict, official names."""
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(to_official_unet(UNetGenerator(3, 3, num_downs=8, base_channels=4)), buffer)
    return buffer.getvalue()


@pytest.fixture
def models_server(server, monkeypatch):
    """The server holds facades_label2photo.pth at its root, and $PIX2PIX_MODELS_URL points at it."""
    server.files["/facades_label2photo.pth"] = official_file_bytes()
    monkeypatch.setenv(URL_VARIABLE, server.url)
    yield server
    for name in ("facades_label2photo",):  # the cache root is shared by the whole test session
        cached_path(name).unlink(missing_ok=True)
        digest_path(cached_path(name)).unlink(missing_ok=True)


def test_list_names_each_model_with_its_task_direction_and_cache_state(models_server, capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("facades_label2photo", "sat2map", "map2sat", "edges2shoes", "day2night"):
        assert name in out
    assert "BtoA of facades" in out and "not downloaded" in out and models_server.url in out
    assert main(["models", "download", "facades_label2photo", "--quiet"]) == 0
    capsys.readouterr()
    main(["models", "list"])
    assert f"cached at {cached_path('facades_label2photo')}" in capsys.readouterr().out


def test_download_then_load_translates_exactly_as_the_file_itself(models_server, tmp_path, capsys):
    assert main(["models", "download", "facades_label2photo", "--quiet"]) == 0
    path = cached_path("facades_label2photo")
    assert path.read_bytes() == models_server.files["/facades_label2photo.pth"]
    assert str(path) in capsys.readouterr().out and digest_path(path).exists()
    (tmp_path / "latest_net_G.pth").write_bytes(models_server.files["/facades_label2photo.pth"])
    direct = Pix2Pix.load(tmp_path / "latest_net_G.pth", device="cpu")
    pretrained = load_model("pretrained:facades_label2photo", device="cpu")
    batch = torch.rand(2, 3, 256, 256) * 2 - 1
    for mode in ({"dropout": True, "norm_stats": "batch"}, {"dropout": False, "norm_stats": "running"}):
        assert torch.equal(pretrained.translate_tensor(batch, **mode), direct.translate_tensor(batch, **mode))
    assert len(models_server.ranges) == 1  # loaded from the cache: no second download


def test_the_metadata_travels_into_the_model(models_server):
    model = Pix2Pix.from_pretrained("facades_label2photo", device="cpu", progress=False)
    data = model.config.data
    assert (data.direction, data.crop_size, data.load_size, data.data) == ("BtoA", 256, 256, "datasets/facades")
    described = describe_model(model, dropout=True, norm_stats="batch")
    assert described["drawing"] == "labels" and described["palette"]  # serve offers the facade label colours


def test_test_command_uses_the_models_direction_without_flags(models_server, tmp_path):
    """A dataset laid out as the facades release (A photo | B labels): the model must be fed the B half."""
    root = tmp_path / "facades" / "test"
    root.mkdir(parents=True)
    pair = np.zeros((256, 512, 3), np.uint8)
    pair[:, 256:] = (0, 0, 255)  # B: one label colour
    Image.fromarray(pair).save(root / "1.png")
    out = tmp_path / "out"
    arguments = ["test", "--checkpoint", "pretrained:facades_label2photo", "--input", str(tmp_path / "facades")]
    assert main([*arguments, "--split", "test", "--output", str(out), "--quiet"]) == 0
    for folder, colour in (out / "inputs", [0, 0, 255]), (out / "targets", [0, 0, 0]):  # B in, A the target
        with Image.open(folder / "1.png") as image:
            assert np.asarray(image.convert("RGB"))[0, 0].tolist() == colour


def test_an_interrupted_download_resumes_where_it_stopped(models_server):
    body = models_server.files["/facades_label2photo.pth"]
    models_server.cut_after = 1000
    with pytest.raises(OSError, match="stopped at 1000"):
        download_pretrained("facades_label2photo", progress=False)
    assert not cached_path("facades_label2photo").exists()
    models_server.cut_after = None
    path = download_pretrained("facades_label2photo", progress=False)
    assert models_server.ranges[-1] == "bytes=1000-" and path.read_bytes() == body


@pytest.mark.parametrize("damage", ["truncated", "changed"])
def test_a_damaged_cached_file_is_refused_in_one_line_never_loaded(models_server, damage, tmp_path, capsys):
    path = download_pretrained("facades_label2photo", progress=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else data[:-1] + bytes([data[-1] ^ 1]))
    arguments = ["--input", "builtin", "--output", str(tmp_path / "out"), "--quiet"]
    code = main(["test", "--checkpoint", "pretrained:facades_label2photo", *arguments])
    error = capsys.readouterr().err
    assert code == 1 and error.count("\n") == 1
    assert "SHA-256" in error and "refusing to load it" in error and "--force" in error
    assert main(["models", "download", "facades_label2photo", "--force", "--quiet"]) == 0
    assert path.read_bytes() == data and Pix2Pix.from_pretrained("facades_label2photo", device="cpu")


def test_a_file_put_in_the_cache_by_hand_is_recorded_then_checked(models_server):
    path = cached_path("facades_label2photo")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(models_server.files["/facades_label2photo.pth"])
    models_server.files.clear()  # offline: nothing to download
    assert Pix2Pix.from_pretrained("facades_label2photo", device="cpu")
    assert digest_path(path).exists()
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(OSError, match="SHA-256"):
        Pix2Pix.from_pretrained("facades_label2photo", device="cpu")


def test_no_server_is_one_line_naming_the_url_and_where_to_put_the_file(monkeypatch, capsys):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv(URL_VARIABLE, url)
    assert main(["models", "download", "sat2map", "--quiet"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"fetch {url}/sat2map.pth by hand" in error
    assert f"save it as {cached_path('sat2map')}" in error and URL_VARIABLE in error


def test_unknown_names_and_bad_urls_are_usage_errors(monkeypatch, tmp_path, capsys):
    arguments = ["--input", "builtin", "--output", str(tmp_path / "out"), "--quiet"]
    assert main(["test", "--checkpoint", "pretrained:horse2zebra", *arguments]) == 2
    assert "unknown pretrained model 'horse2zebra'; available: facades_label2photo" in capsys.readouterr().err
    monkeypatch.setenv(URL_VARIABLE, "ftp://mirror")
    assert main(["models", "download", "sat2map", "--quiet"]) == 2
    assert "must start with http:// or https://" in capsys.readouterr().err


def test_summary_and_export_take_a_pretrained_name(models_server, tmp_path, capsys):
    assert main(["summary", "--checkpoint", "pretrained:facades_label2photo", "--no-layers"]) == 0
    assert "Generator unet_256 (ngf 4" in capsys.readouterr().out
    pytest.importorskip("onnxruntime")
    out = tmp_path / "facades.onnx"
    assert (
        main(["export", "--checkpoint", "pretrained:facades_label2photo", "--format", "onnx", "--out", str(out)]) == 0
    )
    assert load_model(out).config.data.direction == "BtoA"  # the metadata travels into the export too


@pytest.mark.skipif(not (FIXTURES / "G_unet_256_batch.pt").is_file(), reason=f"no official fixtures at {FIXTURES}")
def test_the_official_unet_256_served_as_a_pretrained_model_gives_the_official_outputs(server, monkeypatch):
    fixture = torch.load(FIXTURES / "G_unet_256_batch.pt")
    buffer = io.BytesIO()
    torch.save(fixture["state_dict"], buffer)
    server.files["/edges2shoes.pth"] = buffer.getvalue()
    monkeypatch.setenv(URL_VARIABLE, server.url)
    try:
        model = Pix2Pix.from_pretrained("edges2shoes", device="cpu", progress=False)
        output = model.translate_tensor(fixture["input"], dropout=False, norm_stats="running")
        assert (output - fixture["output_eval"]).abs().max().item() < 1e-5
    finally:
        cached_path("edges2shoes").unlink(missing_ok=True)
        digest_path(cached_path("edges2shoes")).unlink(missing_ok=True)


def test_a_page_that_is_not_a_model_file_is_refused_and_deleted(models_server):
    models_server.files["/facades_label2photo.pth"] = b"<!DOCTYPE html><html>maintenance</html>"
    with pytest.raises(OSError, match="not a model file; deleted it"):
        download_pretrained("facades_label2photo", progress=False)
    assert not cached_path("facades_label2photo").exists()
    assert not digest_path(cached_path("facades_label2photo")).exists()


def test_processes_asking_at_once_download_once(models_server):
    import threading

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(download_pretrained("facades_label2photo", progress=False)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and len(models_server.ranges) == 1  # one download; the others found it cached
    assert results[0].read_bytes() == models_server.files["/facades_label2photo.pth"]


def test_a_read_only_cache_that_holds_the_model_still_loads(models_server):
    path = download_pretrained("facades_label2photo", progress=False)
    folder = path.parent
    folder.chmod(0o555)
    try:
        assert download_pretrained("facades_label2photo", progress=False) == path
    finally:
        folder.chmod(0o755)
