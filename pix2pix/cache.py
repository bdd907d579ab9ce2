"""The one folder for everything pix2pix makes once and reuses: the built-in dataset, FCN-score
segmenters, detected palettes, downloaded models and ONNX exports. Nothing is cached inside a user's
dataset folder.

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


def prune_least_recently_used(folder: Path, pattern: str, max_bytes: int, *, keep: Path) -> None:
    """Delete the files of `folder` matching `pattern`, least recently used (oldest mtime) first, until they
    total at most `max_bytes`; `keep` (the entry just made) stays whatever its size. Files that another
    process removes meanwhile, or that cannot be removed, are passed over: pruning never fails a caller."""
    entries = []
    for path in folder.glob(pattern):
        with contextlib.suppress(OSError):
            stat = path.stat()
            entries.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries, key=lambda entry: entry[0]):
        if total <= max_bytes:
            break
        if path != keep:
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size


def mark_used(path: Path) -> None:
    """Set `path`'s mtime to now, for prune_least_recently_used; a read-only cache simply stays as it is."""
    with contextlib.suppress(OSError):
        os.utime(path)
