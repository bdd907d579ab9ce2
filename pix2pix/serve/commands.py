"""`pix2pix serve`: FastAPI and torch are imported only when it runs,
and torch only for a checkpoint; an exported `.onnx` file is served without it (see load_model)."""

from __future__ import annotations

import argparse
import socket
from typing import Any

from pix2pix.flags import add_reverse_flag, add_runtime_flag, add_test_time_flags

# as pix2pix.serve.app's defaults, repeated here so that building the parser imports nothing heavy
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 2048 * 2048
DEFAULT_BATCH_WINDOW_MS = 2.0
DEFAULT_BODY_TIMEOUT_S = 30.0


def run_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from pix2pix.inference.formats import load_model
    from pix2pix.serve.app import check_form_parser, connection_limit, create_app

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be between 0 and 65535, got {args.port}")
    check_form_parser()  # before the model loads, which can take a while
    check_can_listen(args.host, args.port)
    model = load_model(args.checkpoint, device=args.device, runtime=args.runtime, reverse=args.reverse)
    app = create_app(
        model,
        max_upload_bytes=args.max_upload_bytes,
        max_pixels=args.max_pixels,
        workers=args.workers,
        max_concurrent=args.max_concurrent,
        dropout=args.dropout == "on",
        norm_stats=args.norm_stats,
        batch_window_ms=args.batch_window_ms,
        body_timeout_s=args.body_timeout,
    )
    info = app.state.info
    max_connections = connection_limit(info["max_concurrent"])
    print(
        f"limits: {info['max_pixels']} pixels an image, {info['max_concurrent']} translations in flight, "
        f"{max_connections} connections, {info['body_timeout_s']:g} s to send a body"
    )
    batching = info["batching"]
    if batching["active"]:
        print(f"micro-batching: requests within {batching['window_ms']} ms, up to {batching['max_batch']} a batch")
    else:
        print(f"micro-batching off: {batching['reason']}")
    print(f"serving {args.checkpoint} ({info['model']['backend']}) at http://{args.host}:{args.port}/ (Ctrl+C to stop)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", limit_concurrency=max_connections)


def check_can_listen(host: str, port: int) -> None:
    """Bind host:port and let it go again, so that a port in use or a host that is not this machine's
    is refused in one line before the model loads, rather than logged by uvicorn after "serving"."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as error:
        raise ValueError(f"cannot listen on {host}:{port} ({error.strerror or error})") from None


def add_serve_command(commands: Any) -> None:
    serve = commands.add_parser("serve", help="web demo and HTTP API for a trained or exported model")
    add_serve_flags(serve)
    serve.set_defaults(run=run_serve)


def add_serve_flags(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--checkpoint", required=True, help="run folder, checkpoint file, or exported .onnx file")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--max-upload-bytes",
        type=int,
        default=DEFAULT_MAX_UPLOAD_BYTES,
        help=f"largest accepted request body (default: {DEFAULT_MAX_UPLOAD_BYTES})",
    )
    serve.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="largest accepted image, width x height, checked on its header; more gets 413 "
        f"(default: {DEFAULT_MAX_PIXELS}, 2048x2048)",
    )
    serve.add_argument("--workers", type=int, help="translation threads sharing the model (default: min(4, cores))")
    serve.add_argument(
        "--max-concurrent",
        type=int,
        help="translations in flight at once; more requests get 503 with Retry-After (default: twice --workers)",
    )
    serve.add_argument(
        "--batch-window-ms",
        type=float,
        default=DEFAULT_BATCH_WINDOW_MS,
        help="translate requests of one size arriving this close together as one batch, where that gives "
        f"each the same result as alone; 0: never, at most 1000 (default: {DEFAULT_BATCH_WINDOW_MS})",
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=DEFAULT_BODY_TIMEOUT_S,
        help="seconds a client has to send its whole request body; later gets 408 "
        f"(default: {DEFAULT_BODY_TIMEOUT_S:g})",
    )
    # deterministic by default: a demo should answer the same drawing with the same picture;
    # an .onnx file has only the mode it was exported with
    add_test_time_flags(serve, dropout="off", norm_stats="running")
    add_runtime_flag(serve)
    add_reverse_flag(serve)
    serve.add_argument("--device", default="auto")
