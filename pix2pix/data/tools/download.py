"""Download and safely unpack the standard pix2pix datasets.

Archives come from the public pix2pix location (or `PIX2PIX_DATASETS_URL`, or `base_url`). A download
goes to `NAME.tar.gz.part` first, so an interrupted one resumes with an HTTP Range request, and is
checked against the server's size (and, when one is given, its SHA-256) before it is unpacked; a
resumed reply must start where the partial file ends. Datasets need only files and folders, so
extraction refuses links, special files, absolute paths, `..`, empty names and clashing paths before it
writes anything, unpacks into a hidden staging folder, checks that every path there resolves inside it,
and only then renames it into place. A refused archive (or one whose extraction fails) leaves nothing
behind, not even the download.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import http.client
import logging
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

DATASETS = ("facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day")
DEFAULT_URL = "https://efrosgans.eecs.berkeley.edu/pix2pix/datasets"
URL_VARIABLE = "PIX2PIX_DATASETS_URL"

logger = logging.getLogger(__name__)

_CHUNK = 1 << 16
# Image datasets barely compress (JPEG, PNG): an archive that claims to unpack to 20x its size or more is
# a decompression bomb, not a dataset, and is refused before a byte is written.
MAX_EXPANSION = 20
FREE_SPACE_MARGIN = 100 << 20  # left free on the disk after the extraction


class DownloadError(OSError):
    """A download that failed, or an archive or file that cannot be used; the message is one line. An OSError
    (exit code 1): what went wrong is the network or the file that came, not the command as given."""


def resolve_base_url(base_url: str | None = None) -> str:
    """`base_url`, else $PIX2PIX_DATASETS_URL, else the public pix2pix archive location."""
    url = (base_url or os.environ.get(URL_VARIABLE) or DEFAULT_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"dataset URL {url!r} must start with http:// or https://")
    return url


def download_dataset(
    name: str,
    root: Path | str,
    *,
    base_url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Fetch and unpack dataset `name` into `root/name` (returned); a folder already there is kept. With
    `sha256`, an archive of another digest is deleted and refused before anything is unpacked."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    if sha256 is not None:
        sha256 = check_sha256(sha256)
    root = Path(root)
    target = root / name
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    archive = root / f"{name}.tar.gz"
    if not archive.exists():  # a complete download left by an earlier run is reused
        fetch_file(f"{resolve_base_url(base_url)}/{name}.tar.gz", archive, progress=progress, timeout=timeout)
    check_digest(archive, sha256)
    try:
        extract_dataset(archive, target, progress=progress)
    except NotEnoughSpace as err:  # nothing wrong with the archive: keep it for the run after a clean-up
        raise NotEnoughSpace(f"{err}; kept the archive: free some space and run the command again") from err
    except DownloadError as err:
        archive.unlink()  # the next run must download afresh, never reuse a refused or damaged archive
        raise DownloadError(f"{err}; deleted the archive") from err
    archive.unlink()
    return target


def check_sha256(text: str) -> str:
    """`text` as a SHA-256 digest (lower case); a ValueError if it is not 64 hexadecimal digits."""
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise ValueError(f"SHA-256 {text!r}: expected 64 hexadecimal digits")
    return text.lower()


def check_digest(archive: Path, expected: str | None) -> None:
    """Log the archive's SHA-256 (to pin it next time); delete and refuse it if it is not `expected`.

    The official server publishes no digests, so none is built in: a user pins what they downloaded once.
    Neither pinned nor logged, the archive is not read (hashing the largest takes seconds)."""
    if expected is None and not logger.isEnabledFor(logging.INFO):
        return
    actual = sha256_of(archive)
    logger.info("%s: SHA-256 %s", archive.name, actual)
    if expected is not None and actual != expected:
        archive.unlink()
        raise DownloadError(f"{archive.name}: SHA-256 {actual} is not the expected {expected}; deleted the archive")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_file(url: str, destination: Path, *, progress: bool = True, timeout: float = 30.0) -> None:
    """Download `url` to `destination` through `destination.part`, resuming a partial file."""
    partial = destination.with_name(destination.name + ".part")
    offset = partial.stat().st_size if partial.exists() else 0
    response = _open(url, partial, offset, timeout)
    with response:
        if response.status == 206:
            _check_content_range(url, response, partial, offset)
        elif offset:
            offset = 0  # the server ignored the Range header and sends the whole file
        total = _expected_size(response, offset)
        failure = _copy_response(response, partial, offset, total, progress=progress)
    size = partial.stat().st_size
    if total is not None and size > total:
        partial.unlink()
        raise DownloadError(
            f"{url}: received {size} bytes, more than the server's size of {total}; deleted {partial.name}, "
            "run the command again to start afresh"
        )
    if failure or (total is not None and size != total):
        expected = f" of {total}" if total is not None else ""
        reason = f" ({failure})" if failure else ""
        raise DownloadError(
            f"{url}: download stopped at {size}{expected} bytes{reason}; run the command again to resume"
        )
    partial.replace(destination)


def extract_dataset(archive: Path, target: Path, *, progress: bool = True) -> None:
    """Unpack `archive` into `target`; a top folder named like `target` (as in the pix2pix archives) becomes it."""
    staging = target.with_name(f".{target.name}.extracting")
    if staging.exists():
        shutil.rmtree(staging)  # left by an interrupted run
    extract_safely(archive, staging, progress=progress)
    entries = list(staging.iterdir())
    if [entry.name for entry in entries] == [target.name] and entries[0].is_dir():
        entries[0].rename(target)
        staging.rmdir()
    else:
        staging.rename(target)


def extract_safely(archive: Path, target: Path, *, progress: bool = False) -> None:
    """Extract a .tar.gz into `target` (created), refusing members that escape it; on error `target` is removed."""
    target.mkdir(parents=True)
    try:
        _extract_members(archive, target, progress=progress)
        _check_paths_stay_inside(archive, target)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def find_unsafe_member_problem(member: tarfile.TarInfo) -> str | None:
    """Why `member` must not be extracted, or None for a plain file or folder with a relative, downward path."""
    if not member.name:
        return "empty name"
    name = PurePosixPath(member.name)
    if name.is_absolute() or re.match(r"^[A-Za-z]:", member.name):
        return "absolute path"
    if ".." in name.parts:
        return "'..' in its path"
    # Links are refused outright, even ones pointing inside: a chain of links that each look inside
    # when checked can lead outside once later members exist, and datasets need no links.
    if member.issym():
        return f"symbolic link to {member.linkname!r} (datasets need no links)"
    if member.islnk():
        return f"hard link to {member.linkname!r} (datasets need no links)"
    if not (member.isfile() or member.isdir()):
        return "device, FIFO or other special file"
    return None


def find_member_clash(members: list[tarfile.TarInfo]) -> tuple[tarfile.TarInfo, str] | None:
    """The first member whose path another member also claims, and why; None when every path is claimed once.

    A name listed twice (unless both are folders), or a file that other members need as a folder, would make
    the extraction fail half-way (or let the later member silently replace the earlier one).
    """
    is_folder: dict[PurePosixPath, bool] = {}
    for member in members:
        path = PurePosixPath(member.name)  # "a//b" and "./a/b" are the same path as "a/b"
        if path in is_folder and not (is_folder[path] and member.isdir()):
            return member, "its name appears twice"
        is_folder[path] = member.isdir()
    for member in members:
        for parent in PurePosixPath(member.name).parents:
            if is_folder.get(parent) is False:
                return member, f"{str(parent)!r} is a file, not a folder"
    return None


class NotEnoughSpace(DownloadError):
    """The archive would not fit on the disk: a refusal that keeps the archive."""


def refuse_bomb_or_full_disk(archive: Path, members: list[tarfile.TarInfo], target: Path) -> None:
    """Refuse members whose declared sizes are too large for the archive (a decompression bomb) or for the
    free space, or that are more than the disk has files left for. tarfile writes exactly the declared
    sizes, so the check is exact."""
    unpacked = sum(member.size for member in members if member.isfile())
    packed = archive.stat().st_size
    if unpacked > MAX_EXPANSION * max(packed, _CHUNK):
        raise DownloadError(
            f"{archive}: refusing it: it claims to unpack {unpacked / 2**20:.0f} MiB from {packed / 2**20:.1f} MiB"
            " (a decompression bomb); nothing was extracted"
        )
    files = os.statvfs(target) if hasattr(os, "statvfs") else None
    # a file system without a fixed number of files (btrfs, ZFS) says 0 for both
    if files is not None and files.f_files and len(members) > files.f_favail:
        raise NotEnoughSpace(
            f"{archive}: it holds {len(members)} files and folders, but {target}'s disk has room for "
            f"{files.f_favail} more; nothing was extracted"
        )
    free = shutil.disk_usage(target).free
    if unpacked + FREE_SPACE_MARGIN > free:
        raise NotEnoughSpace(
            f"{archive}: it unpacks to {unpacked / 2**20:.0f} MiB, but {target} has {free / 2**20:.0f} MiB free"
            f" ({FREE_SPACE_MARGIN >> 20} MiB is kept free); nothing was extracted"
        )


def _extract_members(archive: Path, target: Path, *, progress: bool) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()  # every member is checked before anything is written
            for member in members:
                problem = find_unsafe_member_problem(member)
                if problem:
                    raise DownloadError(f"{archive}: refusing member {member.name!r}: {problem}; nothing was extracted")
            clash = find_member_clash(members)
            if clash:
                raise DownloadError(f"{archive}: refusing member {clash[0].name!r}: {clash[1]}; nothing was extracted")
            refuse_bomb_or_full_disk(archive, members, target)
            bar = tqdm(members, desc=f"extract {archive.name}", unit="file", disable=not progress)
            # The "data" filter repeats the path checks and also sanitises modes and owners.
            tar.extractall(target, members=bar, filter="data")
    except DownloadError:
        raise  # our own refusals say what they are; the OSError clause below is for the rest
    except tarfile.FilterError as err:
        name = err.tarinfo.name if err.tarinfo else "?"
        raise DownloadError(f"{archive}: refusing member {name!r}: {_one_line(err)}; nothing was extracted") from err
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DownloadError(f"{archive}: not a readable .tar.gz ({_one_line(err)})") from err
    except OSError as err:
        if err.errno == errno.ENOSPC:  # the disk filled all the same (other writers): keep the archive
            raise NotEnoughSpace(f"{archive}: the disk filled during the extraction; nothing was kept") from err
        # What the checks above missed (a name clash on a case-insensitive disk, a full disk) is a refusal
        # too: the caller deletes the archive rather than let every later run fail on it the same way.
        raise DownloadError(f"{archive}: refusing it: extraction failed ({_one_line(err)}); nothing was kept") from err


def _check_paths_stay_inside(archive: Path, target: Path) -> None:
    """Refuse the extraction if any path under `target` resolves outside it (a last check, after the member checks)."""
    root = target.resolve()
    for folder, names, files in os.walk(target):
        for name in names + files:
            path = Path(folder, name)
            if not _is_inside(path.resolve(), root):
                raise DownloadError(f"{archive}: refusing {path.relative_to(target)}: it resolves outside the target")


def _copy_response(
    response: http.client.HTTPResponse, partial: Path, offset: int, total: int | None, *, progress: bool
) -> str | None:
    """Append the response body to `partial`; returns why the transfer broke off, or None."""
    bar = tqdm(
        total=total,
        initial=offset,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=partial.name.removesuffix(".part"),
        disable=not progress,
    )
    with open(partial, "ab" if offset else "wb") as file, bar:
        try:
            while chunk := response.read(_CHUNK):
                file.write(chunk)
                bar.update(len(chunk))
        except (TimeoutError, ConnectionError, http.client.HTTPException) as err:
            return _one_line(err)  # what arrived stays in the .part file for the next run
    return None


def _open(url: str, partial: Path, offset: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # The server cannot continue our partial file (it changed, or was complete): start afresh next time.
            partial.unlink()
            raise DownloadError(f"{url}: the server cannot resume {partial.name}; deleted it, run again") from err
        raise DownloadError(f"{url}: HTTP error {err.code} {err.reason}") from err
    except OSError as err:  # URLError (refused, DNS), timeouts
        reason = err.reason if isinstance(err, urllib.error.URLError) else err
        raise DownloadError(
            f"{url}: cannot reach the server ({_one_line(reason)}); check the network, or set --url / {URL_VARIABLE}"
        ) from err
    except http.client.HTTPException as err:  # BadStatusLine, LineTooLong, too many headers
        raise DownloadError(f"{url}: the server's answer is not a valid HTTP reply ({_one_line(err)})") from err


def _check_content_range(url: str, response: http.client.HTTPResponse, partial: Path, offset: int) -> None:
    """Delete `partial` and fail unless the 206 reply's Content-Range starts at `offset` and fits its total."""
    content_range = " ".join(response.headers.get("Content-Range", "").split())
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", content_range)
    if match:
        start, end, total = int(match.group(1)), int(match.group(2)), match.group(3)
        if start == offset <= end and (total == "*" or end < int(total)):
            return
    # Appending another range would corrupt the partial file for every later run.
    partial.unlink(missing_ok=True)
    raise DownloadError(
        f"{url}: asked to resume at byte {offset}, the server answered another range "
        f"({content_range or 'no Content-Range'}); deleted {partial.name}, run the command again to start afresh"
    )


def _expected_size(response: http.client.HTTPResponse, offset: int) -> int | None:
    """Size of the complete file, from Content-Range (a resumed download) or Content-Length."""
    content_range = response.headers.get("Content-Range", "")
    match = re.fullmatch(r"bytes \d+-\d+/(\d+)", content_range.strip())
    if match:
        return int(match.group(1))
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _is_inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _one_line(err: object) -> str:
    return " ".join(str(err).split()) or type(err).__name__
