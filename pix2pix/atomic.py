"""Writing a file atomically: into a temporary file beside it, fsync, then rename over it, so a crash
mid-write never leaves a half-written file in its place. Standard library only."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def read_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it: set it, then straight back
    os.umask(mask)
    return mask


# The permissions `open()` gives a new file. Read once, at import, because reading it briefly sets the
# umask to 0 for the whole process, which another thread creating a file must not see.
NEW_FILE_MODE = 0o666 & ~read_umask()


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create `path`'s folder, call `write` on a binary file open in it (`.NAME.XXXX.tmp`), and replace
    `path` with that file once everything is on disk; a failed write leaves `path` as it was. The file gets
    `path`'s permissions if it exists, else a new file's (mkstemp's own are owner-only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else NEW_FILE_MODE
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:  # name the file asked for (a read-only folder, a full disk), not the temporary one
        raise type(error)(error.errno, error.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        sync_directory(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sync_directory(folder: Path) -> None:
    """fsync the folder so the rename itself survives a power cut (POSIX only)."""
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
