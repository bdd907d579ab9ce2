"""The one folder for everything pix2pix makes once and reuses: the built-in dataset, FCN-score
segmenters and detected palettes. Nothing is cached inside a user's dataset folder.

`$PIX2PIX_HOME` if set, else `$XDG_CACHE_HOME/pix2pix`, else `~/.cache/pix2pix`. Standard library only:
the torch-free parts of the package use it too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def cache_home() -> Path:
    if os.environ.get("PIX2PIX_HOME"):
        return Path(os.environ["PIX2PIX_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # the XDG spec: a relative path is invalid and must be ignored
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "pix2pix"


@contextlib.contextmanager
def taking_turns(path: Path) -> Iterator[None]:
    """An exclusive lock on PATH.lock while the cache entry `path` is made, so processes that want the same
    entry at once take turns: one makes it, the others then find it made."""
    import fcntl  # POSIX; imported here so that merely reading the cache needs none

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process ends
        yield
