"""The HTTP API: good images, every kind of bad request, limits, the ONNX backend, and a loopback load test."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import math
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import uvicorn
from fastapi.testclient import TestClient
from PIL import Image

from pix2pix.cli import main as cli_main
from pix2pix.config import DataConfig, ModelConfig, RunConfig
from pix2pix.data.synthetic import SYNTHETIC_PALETTE
from pix2pix.export import export_onnx
from pix2pix.inference import Pix2Pix
from pix2pix.inference.torch_model import onnxruntime_installed
from pix2pix.networks import build_generator_for
from pix2pix.serve import app as serve_app
from pix2pix.serve import commands as serve_commands
from pix2pix.serve.app import DEFAULT_MAX_PIXELS, MAX_BATCH, connection_limit, create_app, decode_image
from pix2pix.serve.batching import MicroBatcher

ROOT = Path(__file__).resolve().parents[1]


def untrained_model(data: str, crop_size: int = 32, **data_changes) -> Pix2Pix:
    """A small untrained U-Net; the server does not care how good it is."""
    config = RunConfig(
        data=DataConfig(data=data, load_size=crop_size, crop_size=crop_size, **data_changes),
        model=ModelConfig(base_channels=8),
    )
    torch.manual_seed(0)
    return Pix2Pix(build_generator_for(config), config, torch.device("cpu"))


def label_model(crop_size: int = 64) -> Pix2Pix:
    """Configured as the built-in labels -> photo model, so the page offers the facade palette."""
    return untrained_model("builtin", crop_size)


@pytest.fixture(scope="module")
def model() -> Pix2Pix:
    return untrained_model("datasets/edges2shoes")


@pytest.fixture(scope="module")
def client(model) -> Iterator[TestClient]:
    with TestClient(create_app(model, workers=2)) as test_client:
        yield test_client


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def random_image(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels, mode)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but holds one tiny IDAT: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def decode_png(response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG"
    image.load()
    return image


def test_translates_a_multipart_upload(client):
    files = {"file": ("in.png", encode(random_image(40, 24)), "image/png")}
    assert decode_png(client.post("/translate", files=files)).size == (40, 24)


@pytest.mark.parametrize(
    "image, fmt, content_type",
    [
        (random_image(32, 32), "PNG", "image/png"),
        (random_image(50, 30), "JPEG", "image/jpeg"),
        (random_image(32, 64, "RGBA"), "PNG", "application/octet-stream"),
        (random_image(32, 32).convert("L"), "WEBP", "image/webp"),
    ],
)
def test_translates_a_raw_body(client, image, fmt, content_type):
    response = client.post("/translate", content=encode(image, fmt), headers={"content-type": content_type})
    output = decode_png(response)
    assert output.size == image.size and output.mode == "RGB"


def test_direction_must_match_the_model(client):
    body, headers = encode(random_image(32, 32)), {"content-type": "image/png"}
    assert client.post("/translate?direction=AtoB", content=body, headers=headers).status_code == 200
    response = client.post("/translate?direction=BtoA", content=body, headers=headers)
    assert response.status_code == 400 and "translates AtoB" in response.json()["detail"]


def test_health_and_info(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/info").json()
    assert info["direction"] == "AtoB" and info["stride"] == 32 and info["crop_size"] == 32
    # the default deterministic mode runs in onnxruntime when it is installed (Pix2Pix.runtime_for)
    expected_backend = "onnxruntime" if onnxruntime_installed() else "torch"
    assert info["model"]["backend"] == expected_backend and info["model"]["norm_stats"] == "running"
    assert info["color_space"] == "rgb" and (info["input_mode"], info["output_mode"]) == ("RGB", "RGB")
    assert info["preprocess"] == "resize_and_crop" and info["resizes_to"] == [32, 32]
    assert info["drawing"] == "sketch" and info["palette"] is None
    assert info["max_upload_bytes"] == 10 * 1024 * 1024 and info["max_pixels"] == 2048 * 2048
    assert info["workers"] == 2 and info["max_concurrent"] == 4  # twice the workers
    assert info["batching"] == {"active": True, "window_ms": 2.0, "max_batch": MAX_BATCH, "reason": None}


def test_a_diverged_model_is_refused_before_serving():
    model = untrained_model("datasets/edges2shoes")
    with torch.no_grad():
        model.generator.encoder[0][0].weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="output holds NaN or inf"):  # the warm-up translation finds it
        create_app(model, workers=1)


def test_label_models_publish_the_facade_palette():
    with TestClient(create_app(label_model(), workers=1)) as label_client:
        info = label_client.get("/info").json()
    assert info["drawing"] == "labels"
    assert [entry["name"] for entry in info["palette"]] == list(SYNTHETIC_PALETTE)
    assert info["palette"][0]["color"] == "#0000de"  # background (0, 0, 222)


def test_colorization_models_ask_for_photos_not_drawings():
    pytest.importorskip("skimage", reason="Lab models need scikit-image")
    config = RunConfig(
        data=DataConfig(data="builtin", load_size=32, crop_size=32, color_space="lab", preprocess="none"),
        model=ModelConfig(base_channels=8, in_channels=1, out_channels=2),
    )
    lab_model = Pix2Pix(build_generator_for(config), config, torch.device("cpu"))
    with TestClient(create_app(lab_model, workers=1)) as lab_client:
        info = lab_client.get("/info").json()
        # builtin AtoB would be the facade labels, but a colorization model takes photos: no palette, no pen
        assert info["drawing"] == "photo" and info["palette"] is None
        assert (info["color_space"], info["input_mode"], info["output_mode"]) == ("lab", "L", "RGB")
        assert info["resizes_to"] is None  # preprocess none: the image's own size, rounded to the stride
        photo = random_image(40, 24)
        response = lab_client.post("/translate", content=encode(photo), headers={"content-type": "image/png"})
    output = decode_png(response)
    assert output.size == (40, 24) and output.mode == "RGB"
    expected = lab_model.translate(photo, dropout=False, norm_stats="running")
    assert np.abs(np.asarray(output, int) - np.asarray(expected, int)).max() <= 1
    page_script = (ROOT / "pix2pix" / "serve" / "static" / "app.js").read_text()
    assert 'info.drawing === "photo"' in page_script  # the page hides its drawing tools for these


def test_serves_the_page_and_its_assets(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200


TRUNCATED = encode(random_image(64, 64))[:300]


@pytest.mark.parametrize(
    "body, content_type, status, message",
    [
        (b"hello, not an image", "image/png", 400, "not a readable image"),
        (TRUNCATED, "image/png", 400, "truncated or corrupt"),
        (b"", "image/png", 400, "empty image"),
        (encode(random_image(8, 8)), "text/plain", 415, "expected an image"),
        (encode(random_image(8, 8)), None, 415, "expected an image"),
        (b'{"image": 1}', "application/json", 415, "expected an image"),
        (png_header_only(5000, 5000), "image/png", 413, "5000x5000 is over the limit of 4194304 pixels"),
        (png_header_only(100_000, 100_000), "image/png", 413, "decompression bomb"),  # Pillow's own limit
        (encode(random_image(8, 8), "PPM"), "image/x-portable-pixmap", 415, "unsupported image format PPM"),
    ],
    ids=["text", "truncated", "empty", "text-type", "no-type", "json", "too-many-pixels", "bomb", "ppm"],
)
def test_bad_bodies_get_a_json_4xx(client, body, content_type, status, message):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/translate", content=body, headers=headers)
    assert response.status_code == status
    assert message in response.json()["detail"]
    assert client.get("/healthz").status_code == 200  # still up


def test_images_the_model_cannot_take_get_a_json_415():
    config = RunConfig(data=DataConfig(load_size=32, crop_size=32), model=ModelConfig(base_channels=8, in_channels=1))
    gray_model = Pix2Pix(build_generator_for(config), config, torch.device("cpu"))
    with TestClient(create_app(gray_model, workers=1)) as gray_client:
        lab_tiff = encode(Image.new("LAB", (8, 8)), "TIFF")  # Pillow cannot convert CIE Lab to gray
        response = gray_client.post("/translate", content=lab_tiff, headers={"content-type": "image/tiff"})
        assert response.status_code == 415 and "cannot use a LAB image" in response.json()["detail"]
        assert gray_client.get("/healthz").status_code == 200


def test_bad_multipart_forms_get_a_json_4xx(client):
    text_file = {"file": ("notes.txt", b"hello", "text/plain")}
    assert client.post("/translate", files=text_file).status_code == 415
    no_file = client.post("/translate", data={"name": "value"}, files={})
    assert no_file.status_code in (400, 415)  # urlencoded without files: not a multipart form
    only_fields = client.post(
        "/translate",
        content=b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n',
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert only_fields.status_code == 400 and "no file field" in only_fields.json()["detail"]
    two_files = [("a", ("a.png", b"1", "image/png")), ("b", ("b.png", b"2", "image/png"))]
    assert client.post("/translate", files=two_files).status_code == 400
    garbled = {"content-type": "multipart/form-data; boundary=b"}
    assert client.post("/translate", content=b"--b\r\nnonsense", headers=garbled).status_code == 400


def test_size_limits_are_configurable(model):
    with TestClient(create_app(model, max_upload_bytes=2000, max_pixels=40 * 40, workers=1)) as small:
        big = encode(random_image(64, 64))  # incompressible noise: well over 2000 bytes
        too_many_bytes = small.post("/translate", content=big, headers={"content-type": "image/png"})
        assert too_many_bytes.status_code == 413 and "2000 bytes" in too_many_bytes.json()["detail"]
        multipart = small.post("/translate", files={"file": ("big.png", big, "image/png")})
        assert multipart.status_code == 413

        flat = encode(Image.new("RGB", (64, 64), "white"))  # few bytes, too many pixels
        assert len(flat) < 2000
        too_many_pixels = small.post("/translate", content=flat, headers={"content-type": "image/png"})
        assert too_many_pixels.status_code == 413 and "64x64" in too_many_pixels.json()["detail"]

        fits = encode(Image.new("RGB", (40, 40), "white"))
        assert small.post("/translate", content=fits, headers={"content-type": "image/png"}).status_code == 200
    with pytest.raises(ValueError, match="max_pixels must be at least 1"):
        create_app(model, max_pixels=0)


def test_the_default_pixel_limit_admits_2048_square_but_not_4000_square(client):
    """A flat 4000x4000 PNG is some 50 KB, yet decoding, resizing and encoding it cost seconds of CPU."""
    fits = decode_image(encode(Image.new("RGB", (2048, 2048), "white")), max_pixels=DEFAULT_MAX_PIXELS)
    assert fits.size == (2048, 2048)
    # this PNG holds no pixel data (decoding it gives 400): a 413 shows the header alone was read
    response = client.post("/translate", content=png_header_only(4000, 4000), headers={"content-type": "image/png"})
    assert response.status_code == 413
    assert response.json() == {"detail": "image of 4000x4000 is over the limit of 4194304 pixels"}


def test_requests_past_the_concurrency_limit_get_503_at_once():
    """Two translations held inside the model fill a limit of two: a third is refused while they are
    still held (so it did not queue behind them), and admitted once they finish."""
    held_model = untrained_model("datasets/edges2shoes")
    app = create_app(held_model, workers=2, max_concurrent=2, batch_window_ms=0)
    entered, release = threading.Semaphore(0), threading.Event()
    translate_many = held_model.translate_many

    def hold(sources, **mode):
        entered.release()
        release.wait(timeout=60)
        return translate_many(sources, **mode)

    held_model.translate_many = hold  # type: ignore[method-assign]
    body, headers = encode(random_image(32, 32)), {"content-type": "image/png"}

    async def scenario():
        async with in_process_client(app) as http:
            held = [asyncio.create_task(http.post("/translate", content=body, headers=headers)) for _ in range(2)]
            try:
                for _ in held:
                    assert await asyncio.to_thread(entered.acquire, timeout=60), "a request never reached the model"
                refused = await http.post("/translate", content=body, headers=headers)
                info = (await http.get("/info")).json()  # the other endpoints are not limited
            finally:
                release.set()
            answered = await asyncio.gather(*held)
            admitted = await http.post("/translate", content=body, headers=headers)
        return refused, info, answered, admitted

    refused, info, answered, admitted = asyncio.run(scenario())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json() == {"detail": "busy: 2 translations in flight, the server's limit; retry in a moment"}
    assert info["max_concurrent"] == 2
    assert [response.status_code for response in answered] == [200, 200]
    assert admitted.status_code == 200
    with pytest.raises(ValueError, match="max_concurrent must be at least 1"):
        create_app(held_model, max_concurrent=0)


@asynccontextmanager
async def in_process_client(app) -> AsyncIterator[httpx.AsyncClient]:
    """The app's lifespan (startup, shutdown) and an httpx client that calls it in-process, no sockets."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http,
    ):
        yield http


def post_without_finishing_the_body(http: httpx.AsyncClient, reading: asyncio.Event) -> asyncio.Task:
    """A slowloris upload: declares 5000 bytes, sends 4, and never the rest; `reading` is set once the
    app has taken the 4 bytes and waits for more."""

    async def partial_body() -> AsyncIterator[bytes]:
        yield b"\x89PNG"
        reading.set()
        await asyncio.Event().wait()  # the rest never comes
        yield b""

    headers = {"content-type": "image/png", "content-length": "5000"}
    return asyncio.create_task(http.post("/translate", content=partial_body(), headers=headers))


def test_an_upload_still_arriving_holds_no_translation_slot(model):
    """With one translation slot, an upload whose body never finishes does not block a complete request:
    the slot is taken once the body has been read, so waiting for bodies cannot fill the slots."""
    app = create_app(model, workers=1, max_concurrent=1, batch_window_ms=0)
    body, headers = encode(random_image(32, 32)), {"content-type": "image/png"}

    async def scenario():
        async with in_process_client(app) as http:
            reading = asyncio.Event()
            slow = post_without_finishing_the_body(http, reading)
            try:
                await asyncio.wait_for(reading.wait(), timeout=60)
                return await asyncio.wait_for(http.post("/translate", content=body, headers=headers), timeout=60)
            finally:
                slow.cancel()

    assert decode_png(asyncio.run(scenario())).size == (32, 32)


def test_a_body_that_does_not_arrive_in_time_gets_408(model):
    app = create_app(model, workers=1, max_concurrent=1, body_timeout_s=0.2)
    assert app.state.info["body_timeout_s"] == 0.2

    async def scenario():
        async with in_process_client(app) as http:
            return await asyncio.wait_for(post_without_finishing_the_body(http, asyncio.Event()), timeout=60)

    response = asyncio.run(scenario())
    assert response.status_code == 408 and response.headers["connection"] == "close"
    assert response.json() == {"detail": "the request body did not arrive within 0.2 s"}
    for bad in (0, -1, math.inf, math.nan):
        with pytest.raises(ValueError, match="body_timeout_s must be"):
            create_app(model, body_timeout_s=bad)


@pytest.mark.parametrize("window_ms", [math.inf, math.nan, 1e9, 1000.5, -1])
def test_batch_windows_that_would_hang_every_request_are_refused(model, window_ms, monkeypatch, capsys):
    """An infinite window never flushes: every request would wait forever, and so would a graceful shutdown."""
    with pytest.raises(ValueError, match=r"batch_window_ms must be a number from 0 to 1000, got"):
        create_app(model, batch_window_ms=window_ms)
    monkeypatch.setattr("pix2pix.inference.formats.load_model", lambda *args, **kwargs: model)
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: pytest.fail("served with a bad window"))
    assert cli_main(["serve", "--checkpoint", "run", "--batch-window-ms", str(window_ms)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "pix2pix serve: error: batch_window_ms must be a number from 0 to 1000" in error


def test_the_command_serves_with_a_bounded_number_of_connections(model, monkeypatch):
    served = {}
    monkeypatch.setattr("pix2pix.inference.formats.load_model", lambda *args, **kwargs: model)
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(options, app=app))
    argv = ["serve", "--checkpoint", "run", "--max-concurrent", "3", "--body-timeout", "5", "--batch-window-ms", "1000"]
    assert cli_main(argv) == 0
    assert served["limit_concurrency"] == connection_limit(3) == 4 * 3 + 8
    assert served["app"].state.info["body_timeout_s"] == 5.0


def test_serve_on_a_port_in_use_or_a_foreign_host_is_refused_in_one_line_before_loading(monkeypatch, capsys):
    import socket

    monkeypatch.setattr("pix2pix.inference.formats.load_model", lambda *a, **k: pytest.fail("loaded the model"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli_main(["serve", "--checkpoint", "run", "--port", str(port)]) == 2
        error = capsys.readouterr().err
        assert error == f"pix2pix serve: error: cannot listen on 127.0.0.1:{port} (Address already in use)\n"
    assert cli_main(["serve", "--checkpoint", "run", "--host", "192.0.2.1"]) == 2
    error = capsys.readouterr().err
    assert (
        error.startswith("pix2pix serve: error: cannot listen on 192.0.2.1:8000 (Cannot assign requested address)")
        and error.count("\n") == 1
    )


def test_serve_refuses_to_start_without_python_multipart(model, monkeypatch, capsys):
    """Starlette parses forms with python-multipart (module python_multipart, or multipart before 0.0.13);
    without it every form upload would get a 500, so the server does not start."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if "multipart" in name else find_spec(name, *args)
    )
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'pix2pix\[serve\]'"):
        create_app(model)
    assert cli_main(["serve", "--checkpoint", "not-loaded"]) == 2  # refused before loading the model
    assert capsys.readouterr().err == "pix2pix serve: error: needs python_multipart: pip install 'pix2pix[serve]'\n"


def test_the_command_line_has_the_apps_defaults():
    for name in ("DEFAULT_MAX_UPLOAD_BYTES", "DEFAULT_MAX_PIXELS", "DEFAULT_BATCH_WINDOW_MS", "DEFAULT_BODY_TIMEOUT_S"):
        assert getattr(serve_commands, name) == getattr(serve_app, name), name
    parser = argparse.ArgumentParser()
    serve_commands.add_serve_flags(parser)
    args = parser.parse_args(["--checkpoint", "run", "--max-concurrent", "3"])
    assert (args.max_concurrent, args.max_pixels) == (3, 2048 * 2048)
    assert parser.parse_args(["--checkpoint", "run"]).max_concurrent is None  # twice the workers


def test_serves_an_onnx_export(model, tmp_path):
    exported = Pix2Pix.load(export_onnx(model, tmp_path / "g.onnx"))
    image = random_image(48, 32)
    with TestClient(create_app(exported, workers=1)) as onnx_client:
        assert onnx_client.get("/info").json()["model"]["backend"] == "onnxruntime"
        response = onnx_client.post("/translate", content=encode(image), headers={"content-type": "image/png"})
    served = np.asarray(decode_png(response), dtype=np.int16)
    expected = np.asarray(model.translate(image, dropout=False, norm_stats="running"), dtype=np.int16)
    assert np.abs(served - expected).max() <= 1
    with pytest.raises(ValueError, match="cannot translate with dropout on"):
        create_app(exported, dropout=True)


TORCH_FREE_SERVER = """
import sys
sys.modules["torch"] = None  # any `import torch` now fails, as where torch is not installed
from fastapi.testclient import TestClient
from pix2pix.inference.onnx_model import OnnxPix2Pix
from pix2pix.cli import main
from pix2pix.serve.app import create_app

model_path, image_path, out_path = sys.argv[1:]
with TestClient(create_app(OnnxPix2Pix.from_file(model_path), workers=1)) as client:
    info = client.get("/info").json()
    assert info["model"]["backend"] == "onnxruntime" and info["drawing"] == "labels", info
    assert info["batching"]["active"], info
    with open(image_path, "rb") as image:
        response = client.post("/translate", content=image.read(), headers={"content-type": "image/png"})
    assert response.status_code == 200, response.text
with open(out_path, "wb") as out:
    out.write(response.content)
# the `pix2pix` command too: it gets as far as loading the model
assert main(["serve", "--checkpoint", model_path + ".missing.onnx"]) == 2
"""


def test_serves_an_onnx_export_without_torch(tmp_path, capfd):
    labels = label_model(crop_size=32)
    image = random_image(48, 32)
    (tmp_path / "in.png").write_bytes(encode(image))
    script = tmp_path / "torch_free_server.py"
    script.write_text(TORCH_FREE_SERVER)
    model_path = export_onnx(labels, tmp_path / "labels.onnx")
    subprocess.run(
        [sys.executable, str(script), str(model_path), str(tmp_path / "in.png"), str(tmp_path / "out.png")],
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert "ONNX model not found" in capfd.readouterr().err
    served = np.asarray(Image.open(tmp_path / "out.png"), dtype=np.int16)
    expected = np.asarray(labels.translate(image, dropout=False, norm_stats="running"), dtype=np.int16)
    assert np.abs(served - expected).max() <= 1


def test_batching_only_where_it_is_exact(model):
    """Batch statistics make each image's result depend on its batch-mates: such a mode is served one
    request at a time, and /info says why."""
    with TestClient(create_app(label_model(), workers=1, norm_stats="batch")) as batch_stats:
        batching = batch_stats.get("/info").json()["batching"]
    assert not batching["active"] and "batch norm" in batching["reason"]
    with TestClient(create_app(model, workers=1, batch_window_ms=0)) as unbatched:
        batching = unbatched.get("/info").json()["batching"]
        assert not batching["active"] and batching["reason"] == "the batch window is 0"
        body = encode(random_image(32, 32))
        assert decode_png(unbatched.post("/translate", content=body, headers={"content-type": "image/png"}))
    with pytest.raises(ValueError, match="batch_window_ms must be a number from 0 to 1000"):
        create_app(model, batch_window_ms=-1)


def test_micro_batcher_groups_inputs_by_shape_and_answers_each_caller():
    batches: list[list[tuple[int, ...]]] = []

    def double(sources):
        batches.append([source.shape for source in sources])
        return [source * 2 for source in sources]

    async def scenario():
        with ThreadPoolExecutor(2) as pool:
            batcher = MicroBatcher(double, window_s=0.05, max_batch=3, executor=pool)
            sources = [np.full((1, 2 + i % 2, 2), i, np.float32) for i in range(8)]  # two shapes, 4 each
            gone = asyncio.ensure_future(batcher.translate(sources[0]))
            await asyncio.sleep(0)
            gone.cancel()  # a client that hangs up while waiting is left out of the batch
            outputs = await asyncio.gather(*(batcher.translate(source) for source in sources))
        return sources, outputs

    sources, outputs = asyncio.run(scenario())
    for source, output in zip(sources, outputs, strict=True):
        assert np.array_equal(output, source * 2)
    assert sorted(len(batch) for batch in batches) == [1, 1, 3, 3]  # per shape: 3 (max_batch), then 1
    assert all(len(set(batch)) == 1 for batch in batches)


def test_micro_batcher_passes_errors_to_every_caller_of_the_batch():
    def fail(sources):
        raise RuntimeError(f"failed on {len(sources)}")

    async def scenario():
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(fail, window_s=0.01, max_batch=4, executor=pool)
            source = np.zeros((1, 2, 2), np.float32)
            return await asyncio.gather(*(batcher.translate(source) for _ in range(2)), return_exceptions=True)

    assert [str(error) for error in asyncio.run(scenario())] == ["failed on 2", "failed on 2"]


@pytest.mark.server
def test_concurrent_requests_are_batched_and_each_gets_its_own_answer():
    # preprocess "none": the network sees each image at its own size, so sizes are batched apart
    model = untrained_model("datasets/edges2shoes", preprocess="none")
    images = [random_image(*((32, 32) if i % 3 else (64, 32)), seed=i) for i in range(12)]
    expected = [np.asarray(model.translate(image, dropout=False, norm_stats="running"), int) for image in images]
    app = create_app(model, workers=2, max_concurrent=len(images), batch_window_ms=200)
    batches: list[list[tuple[int, ...]]] = []
    translate_many = model.translate_many

    def record(sources, **mode):
        batches.append([source.shape for source in sources])
        return translate_many(sources, **mode)

    model.translate_many = record  # type: ignore[method-assign]
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as http:

        def send(image: Image.Image) -> np.ndarray:
            response = http.post("/translate", content=encode(image), headers={"content-type": "image/png"})
            return np.asarray(decode_png(response), int)

        with ThreadPoolExecutor(len(images)) as pool:
            answers = list(pool.map(send, images))
    for answer, reference in zip(answers, expected, strict=True):
        assert answer.shape == reference.shape and np.abs(answer - reference).max() <= 1
    assert sum(len(batch) for batch in batches) == len(images)
    assert max(len(batch) for batch in batches) > 1  # they did share forward passes
    assert all(len(set(batch)) == 1 for batch in batches)  # of one input size each


def find_free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_server(app) -> Iterator[str]:
    """A real uvicorn server on a free loopback port, in a thread; yields its base URL."""
    port = find_free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.mark.server
def test_load_on_loopback(model):
    """200 requests, 16 at a time, against a real server: every answer is the right PNG."""
    sizes = [(32, 32), (48, 40), (64, 32), (20, 36)]
    images = [random_image(*size, seed=i) for i, size in enumerate(sizes)]
    bodies = [encode(image) for image in images]
    expected = [np.asarray(model.translate(image, dropout=False, norm_stats="running"), int) for image in images]
    total, concurrency = 200, 16

    app = create_app(model, workers=2, max_concurrent=concurrency)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as http:

        def send(i: int) -> tuple[float, int, bool]:
            began = time.perf_counter()
            response = http.post("/translate", content=bodies[i % 4], headers={"content-type": "image/png"})
            latency = time.perf_counter() - began
            if response.status_code != 200:
                return latency, response.status_code, False
            answer = np.asarray(decode_png(response), int)
            correct = answer.shape == expected[i % 4].shape and np.abs(answer - expected[i % 4]).max() <= 1
            return latency, response.status_code, bool(correct)

        began = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(send, range(total)))
        elapsed = time.perf_counter() - began
        # a bad request in the middle of the load does not disturb the server
        assert http.post("/translate", content=b"junk", headers={"content-type": "image/png"}).status_code == 400
        assert http.get("/healthz").status_code == 200

    assert [status for _, status, _ in results] == [200] * total
    assert all(correct for _, _, correct in results)  # each got the translation of its own image
    latencies = sorted(latency for latency, _, _ in results)
    p95 = latencies[int(0.95 * total) - 1]
    throughput = total / elapsed
    print(f"\nload test: {total} requests, {concurrency} concurrent: {throughput:.1f} req/s, p95 {p95 * 1000:.0f} ms")
