"""Shared fixtures."""

from __future__ import annotations

import os
import tempfile
import threading

# The test run is a program, like the `pix2pix` command (pix2pix.runtime.tune_process_for_cli), so it may
# set what the library must not: idle OpenMP threads sleep instead of spinning, which keeps the suite fast
# on shared cores. Before anything imports torch, whose OpenMP runtime reads the variable once.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Caches (the built-in dataset, segmenters, palettes) go to a fresh folder, never the user's own.
os.environ["PIX2PIX_HOME"] = tempfile.mkdtemp(prefix="pix2pix-test-home-")

import shutil
from pathlib import Path

import pytest

from tests.file_server import FileServer
from tests.helpers import write_pairs


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_pairs(root, "train", 6)
    write_pairs(root, "val", 2, seed=1)
    write_pairs(root, "test", 3, seed=2)
    return root


@pytest.fixture
def server():
    """A FileServer on 127.0.0.1 (tests/file_server.py) for the test's duration."""
    file_server = FileServer()
    thread = threading.Thread(target=file_server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield file_server
    file_server.shutdown()
    file_server.server_close()
    thread.join()


@pytest.fixture(scope="session", autouse=True)
def remove_the_test_cache_home():
    yield
    shutil.rmtree(os.environ["PIX2PIX_HOME"], ignore_errors=True)


IMPLY_SLOW = ("distributed", "browser", "server")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A distributed, browser or server test is slow too, so `pytest -m "not slow"` alone is the inner loop."""
    for item in items:
        if any(item.get_closest_marker(name) for name in IMPLY_SLOW) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
