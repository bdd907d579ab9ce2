"""Translation throughput: folders by batch size, and `pix2pix serve` with 16 clients against one.

    python benchmarks/bench_serve.py [--size 256] [--requests 48] [--batches 1 4 8 16]

Both use the paper's U-Net (ngf 64, batch norm, untrained weights with non-trivial running statistics)
in the deterministic mode (dropout off, running statistics), through the public API, which picks
onnxruntime when it is installed (`Pix2Pix.runtime_for`).

- Batches: images/s of `translate_array` at each batch size (what `pix2pix test` and `eval` do, 8 at a
  time, in this mode), against batch 1 and against the official layout's eager eval at batch 1
  (benchmarks/official_networks.py).
- Serving: requests/s of a real uvicorn server on the loopback interface (PNG bodies of `--size`
  pixels), sent one at a time by one client, then by 16 concurrent clients (micro-batching on, as by
  default); every answer is checked to be a 200 with a PNG.
"""

from __future__ import annotations

import argparse
import io
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import numpy as np
import torch
import uvicorn
from official_networks import official_unet_like  # beside this script
from PIL import Image

from pix2pix.config import DataConfig, RunConfig
from pix2pix.inference import Pix2Pix
from pix2pix.networks import build_generator_for
from pix2pix.serve.app import create_app

DETERMINISTIC = {"dropout": False, "norm_stats": "running"}


def build_model(size: int) -> Pix2Pix:
    config = RunConfig(data=DataConfig(crop_size=size, load_size=size))
    torch.manual_seed(0)
    generator = build_generator_for(config)
    with torch.no_grad():  # running statistics that are not the initial ones
        for _ in range(3):
            generator(torch.randn(1, 3, size, size))
    return Pix2Pix(generator, config, torch.device("cpu"))


def seconds_per_call(run, repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def bench_batches(model: Pix2Pix, size: int, batches: list[int], repeats: int) -> None:
    official = official_unet_like(model.generator).eval()
    single = torch.rand(1, 3, size, size) * 2 - 1
    with torch.no_grad():
        official_rate = 1 / seconds_per_call(lambda: official(single), repeats)
    print(f"official layout, eager eval, batch 1: {official_rate:.2f} img/s")
    print(f"engine: {model.runtime_for(**DETERMINISTIC)}")
    first = None
    for batch in batches:
        rate = batch / seconds_per_call(translation_of(model, batch, size), repeats)
        first = first or rate
        print(f"batch {batch:>3}: {rate:7.2f} img/s  {rate / first:5.2f}x batch {batches[0]}", end="")
        print(f"  {rate / official_rate:5.2f}x official")


def translation_of(model: Pix2Pix, batch: int, size: int) -> Callable[[], np.ndarray]:
    array = np.random.default_rng(0).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
    return lambda: model.translate_array(array, **DETERMINISTIC)


@contextmanager
def running_server(app) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def bench_serving(model: Pix2Pix, size: int, requests: int) -> None:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(buffer, format="PNG")
    body = buffer.getvalue()
    app = create_app(model, max_concurrent=32)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=300) as http:

        def send(_: int) -> None:
            response = http.post("/translate", content=body, headers={"content-type": "image/png"})
            if response.status_code != 200 or not response.content.startswith(b"\x89PNG"):
                raise RuntimeError(f"answer {response.status_code}: {response.text[:200]}")

        send(0)  # warm-up (and the one-time export of the onnxruntime engine)
        rates = {}
        for clients in (1, 16):
            began = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(send, range(requests)))
            rates[clients] = requests / (time.perf_counter() - began)
        batching = http.get("/info").json()["batching"]
    print(f"serve, {requests} requests of {size}x{size} PNGs, micro-batching {'on' if batching['active'] else 'off'}:")
    print(f"  1 client: {rates[1]:.2f} req/s; 16 clients: {rates[16]:.2f} req/s ({rates[16] / rates[1]:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per batch size (median)")
    parser.add_argument("--requests", type=int, default=48, help="requests per serving measurement")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    model = build_model(args.size)
    bench_batches(model, args.size, args.batches, args.repeats)
    bench_serving(model, args.size, args.requests)


if __name__ == "__main__":
    main()
