"""The web demo and its HTTP API, around one shared model (`Pix2Pix`, or `OnnxPix2Pix` without torch).

POST /translate (an image in, a PNG out), GET /info, GET /healthz, and GET / (the drawing page).
Decoding, translation and encoding run in a thread pool, so the event loop stays free to accept and
reject requests while the model works; the model is loaded once and shared by all workers. The work
per request is bounded: uploads over a pixel limit are refused from the image header, a body that has
not arrived within a time limit gets 408, and beyond a number of translations in flight further
requests get 503 at once instead of queuing (a translation slot is taken only once the body is in, so
slow uploads cannot hold the slots). Requests
of one input size that arrive within the batch window are translated as one batch, when that gives
each exactly its own result. Every bad request gets a 4xx JSON answer `{"detail": "..."}` and never
takes the server down. Nothing here imports torch: an exported model is served without it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import math
import os
import warnings
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message

from pix2pix.data.synthetic import SYNTHETIC_PALETTE
from pix2pix.inference.translator import ImageTranslator, TranslationMode
from pix2pix.serve.batching import MicroBatcher

DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# The work that grows with an upload's pixels (decoding, resizing the answer back, PNG encoding) is
# about 0.5 s of CPU at 2048x2048 and 2 s at 4000x4000, which a flat PNG of some 50 KB declares;
# the network sees the crop size (resize_and_crop), or the whole image where the size is kept.
DEFAULT_MAX_PIXELS = 2048 * 2048
DEFAULT_BATCH_WINDOW_MS = 2.0
# a lone request waits the whole window; past a second that wait outweighs any batching gain, and an
# endless window (inf, nan) would hang every request and the graceful shutdown that waits for them
MAX_BATCH_WINDOW_MS = 1000.0
# the whole body, not the pause between its chunks: a client trickling a byte a second is cut off too.
# 10 MiB (the upload limit) in 30 s needs some 3 Mbit/s; the demo's drawings are a few KB
DEFAULT_BODY_TIMEOUT_S = 30.0
MAX_BATCH = 16  # bounds the memory of one forward pass
ACCEPTED_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"})
STATIC = Path(__file__).parent / "static"


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


def default_max_concurrent(workers: int) -> int:
    # every worker busy and one more request each decoded and ready, so no worker waits for work;
    # requests past that would only queue, holding their memory and adding to everyone's latency
    return 2 * workers


def connection_limit(max_concurrent: int) -> int:
    """Open connections uvicorn serves at once (its `limit_concurrency`; beyond it, a plain 503), which
    bounds the request bodies held in memory to this many times `max_upload_bytes`: a few uploads
    arriving for each translation slot, plus room for the page, its assets, /info and /healthz."""
    return 4 * max_concurrent + 8


def check_form_parser() -> None:
    """Refuse to serve without python-multipart, which starlette parses forms with (module
    `python_multipart`, or `multipart` before 0.0.13): without it every form upload would get a 500."""
    if importlib.util.find_spec("python_multipart") is None and importlib.util.find_spec("multipart") is None:
        raise ModuleNotFoundError(
            "form uploads need python-multipart, which is not installed: pip install 'pix2pix[serve]'",
            name="python_multipart",
        )


def create_app(
    model: ImageTranslator,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
    max_concurrent: int | None = None,
    dropout: bool = False,
    norm_stats: str = "running",
    batch_window_ms: float = DEFAULT_BATCH_WINDOW_MS,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
) -> FastAPI:
    """The app serving `model` in one mode (default deterministic: dropout off, running statistics).

    `batch_window_ms` > 0 batches requests that arrive that close together, if the mode allows it
    (see `describe_batching`); 0 translates every request on its own. At most `max_concurrent`
    translations are in flight (default: twice `workers`); more get 503. A request body not complete
    within `body_timeout_s` seconds gets 408.
    """
    check_form_parser()
    workers = default_workers() if workers is None else workers
    max_concurrent = default_max_concurrent(workers) if max_concurrent is None else max_concurrent
    limits = {
        "max_upload_bytes": max_upload_bytes,
        "max_pixels": max_pixels,
        "workers": workers,
        "max_concurrent": max_concurrent,
    }
    check_limits(limits, batch_window_ms=batch_window_ms, body_timeout_s=body_timeout_s)
    mode: TranslationMode = {"dropout": dropout, "norm_stats": norm_stats, "seed": 0}
    # one throwaway translation: fails now, not at the first request, if the mode is one the model
    # cannot run (an ONNX export in another mode), and warms the model up
    model.translate(Image.new("RGB", (model.stride, model.stride)), **mode)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pix2pix-serve")
    in_flight = InFlightLimit(max_concurrent)
    batching = describe_batching(model, batch_window_ms, dropout=dropout, norm_stats=norm_stats)
    batcher = None
    if batching["active"]:
        batcher = MicroBatcher(
            lambda sources: model.translate_many(sources, **mode),
            window_s=batch_window_ms / 1000,
            max_batch=MAX_BATCH,
            executor=pool,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None, None]:
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="pix2pix", lifespan=lifespan, docs_url=None, redoc_url=None)
    info = describe_model(model, dropout=dropout, norm_stats=norm_stats)
    info.update(limits, body_timeout_s=body_timeout_s, batching=batching)
    app.state.info = info

    def decode_and_prepare(data: bytes) -> tuple[Image.Image, np.ndarray]:
        image = decode_image(data, max_pixels=max_pixels)
        try:
            return image, model.prepare_source(image)
        except ValueError as error:  # a mode Pillow cannot convert, e.g. TIFF's LAB to L
            raise HTTPException(415, f"cannot use a {image.mode} image: {error}") from error

    def translate_alone(source: np.ndarray) -> np.ndarray:
        (output,) = model.translate_many([source], **mode)
        return output

    def finish_and_encode(output: np.ndarray, image: Image.Image) -> bytes:
        png = io.BytesIO()
        model.finish_output(output, image).save(png, format="PNG")
        return png.getvalue()

    @app.post("/translate", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def translate(request: Request, direction: str | None = None) -> Response:
        if direction is not None and direction != model.config.data.direction:
            raise HTTPException(400, f"this model translates {model.config.data.direction}, not {direction!r}")
        in_flight.refuse_if_full()  # already busy: refused before its body is read, at next to no cost
        # the slot is taken only once the body is in: a client that never finishes its upload must not
        # hold a translation slot (the body timeout and uvicorn's connection limit bound those clients)
        body = await read_body(request, max_upload_bytes, timeout_s=body_timeout_s)
        data = await extract_image_bytes(request, body)
        with in_flight.take():
            loop = asyncio.get_running_loop()
            image, source = await loop.run_in_executor(pool, decode_and_prepare, data)
            if batcher is None:
                output = await loop.run_in_executor(pool, translate_alone, source)
            else:
                output = await batcher.translate(source)
            png = await loop.run_in_executor(pool, finish_and_encode, output, image)
        return Response(png, media_type="image/png")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    async def describe() -> dict[str, Any]:
        return info

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def check_limits(limits: dict[str, int], *, batch_window_ms: float, body_timeout_s: float) -> None:
    for name, value in limits.items():
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if not 0 <= batch_window_ms <= MAX_BATCH_WINDOW_MS:  # also false for nan
        raise ValueError(f"batch_window_ms must be a number from 0 to {MAX_BATCH_WINDOW_MS:g}, got {batch_window_ms}")
    if not 0 < body_timeout_s < math.inf:
        raise ValueError(f"body_timeout_s must be a positive number of seconds, got {body_timeout_s}")


class InFlightLimit:
    """At most `limit` requests at work at once; one more is refused with 503 at once, not queued, so a
    burst costs bounded memory and the admitted requests keep their latency.

    Used on the event loop's thread alone, so a plain counter needs no lock.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.taken = 0

    def refuse_if_full(self) -> None:
        if self.taken >= self.limit:
            raise HTTPException(
                503,
                f"busy: {self.limit} translations in flight, the server's limit; retry in a moment",
                headers={"Retry-After": "1"},
            )

    @contextmanager
    def take(self) -> Iterator[None]:
        self.refuse_if_full()
        self.taken += 1
        try:
            yield
        finally:
            self.taken -= 1


def describe_model(model: ImageTranslator, *, dropout: bool, norm_stats: str) -> dict[str, Any]:
    """What the page and API clients need: what to send, what comes back, and how to draw inputs."""
    config = model.config
    colorizes = config.data.color_space == "lab"
    palette = palette_for(config.data.data, config.data.direction)
    return {
        "model": {
            "generator": config.model.generator,
            "base_channels": config.model.base_channels,
            "norm": config.model.norm,
            "backend": model.runtime_for(dropout=dropout, norm_stats=norm_stats),
            "dropout": dropout,
            "norm_stats": norm_stats,
        },
        "direction": config.data.direction,
        "color_space": config.data.color_space,
        "in_channels": config.model.in_channels,
        "out_channels": config.model.out_channels,
        # what the network looks at ("L": colours are ignored) and the mode of the PNG that comes back
        "input_mode": "L" if config.model.in_channels == 1 else "RGB",
        "output_mode": "RGB" if colorizes or config.model.out_channels == 3 else "L",
        "crop_size": config.data.crop_size,
        "preprocess": config.data.preprocess,
        # the network sees the image resized to this square, or (null) at its own size rounded to the stride;
        # the answer always has the upload's size
        "resizes_to": [config.data.crop_size] * 2 if config.data.preprocess == "resize_and_crop" else None,
        "stride": model.stride,
        "drawing": "photo" if colorizes else "labels" if palette else "sketch",
        "palette": None if colorizes else palette,
    }


def describe_batching(model: ImageTranslator, window_ms: float, *, dropout: bool, norm_stats: str) -> dict[str, Any]:
    """Whether requests are batched, and if not, why: only when a batch gives every image exactly the
    result it gets alone (no batch-statistics batch norm, no dropout draws)."""
    coupling = model.batch_coupling(dropout=dropout, norm_stats=norm_stats)
    reason = "the batch window is 0" if window_ms == 0 else coupling
    return {"active": reason is None, "window_ms": window_ms, "max_batch": MAX_BATCH, "reason": reason}


def palette_for(data: str, direction: str) -> list[dict[str, str]] | None:
    """The facade label colours when the model turns label maps into photos, else None (sketch input).

    Label -> photo is AtoB for the built-in facades and BtoA for the facades release.
    """
    is_builtin_labels = data == "builtin" and direction == "AtoB"
    is_facades_labels = "facades" in Path(data).name.lower() and direction == "BtoA"
    if not (is_builtin_labels or is_facades_labels):
        return None
    return [{"name": name, "color": "#{:02x}{:02x}{:02x}".format(*rgb)} for name, rgb in SYNTHETIC_PALETTE.items()]


async def read_body(request: Request, limit: int, *, timeout_s: float) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes (declared or streamed), and
    with 408 if it is not all in within `timeout_s` seconds."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"upload of {declared} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"upload is over the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError as error:
        # the rest of the body may still come: close the connection rather than read it as the next request
        message = f"the request body did not arrive within {timeout_s:g} s"
        raise HTTPException(408, message, headers={"Connection": "close"}) from error
    return b"".join(chunks)


async def extract_image_bytes(request: Request, body: bytes) -> bytes:
    """The image in a raw image/* body, or in the one file field of a multipart form."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        body, content_type = await read_multipart_file(request, body)
    if not (content_type.startswith("image/") or content_type == "application/octet-stream"):
        raise HTTPException(
            415, f"expected an image (image/* body or a multipart file field), got content type {content_type!r}"
        )
    if not body:
        raise HTTPException(400, "empty image")
    return body


async def read_multipart_file(request: Request, body: bytes) -> tuple[bytes, str]:
    """The one file field of a multipart form, parsed by Starlette's public `Request.form` from `body`
    (the request's own stream is spent: read_body has read and size-checked it)."""

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, receive).form(max_files=1, max_fields=16)
    except StarletteHTTPException as error:  # Starlette's 400 for a malformed form
        raise HTTPException(400, f"malformed multipart form: {error.detail}") from error
    try:
        files = [value for value in form.values() if isinstance(value, UploadFile)]
        if not files:
            raise HTTPException(400, "multipart form has no file field")
        content_type = (files[0].content_type or "application/octet-stream").lower()
        return await files[0].read(), content_type
    finally:
        await form.close()


def decode_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Decode an upload; the pixel count is checked on the header, before any pixel is decompressed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in ACCEPTED_FORMATS:
                    accepted = ", ".join(sorted(ACCEPTED_FORMATS))
                    raise HTTPException(415, f"unsupported image format {image.format}; send one of {accepted}")
                width, height = image.size
                if width * height > max_pixels:
                    raise HTTPException(413, f"image of {width}x{height} is over the limit of {max_pixels} pixels")
                image.load()
                return image.copy()  # the decoded pixels, kept after the file closes
    except HTTPException:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise HTTPException(413, "refusing a possible decompression bomb") from error
    except UnidentifiedImageError as error:
        raise HTTPException(400, "the upload is not a readable image") from error
    # Pillow's decoders fail with many exception types (OSError, SyntaxError, ValueError...)
    except Exception as error:
        raise HTTPException(400, f"cannot decode the image (truncated or corrupt): {type(error).__name__}") from error
