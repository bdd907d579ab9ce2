"""`pix2pix data download` against a local HTTP server: resume, size check, safe extraction, errors."""

from __future__ import annotations

import hashlib
import io
import logging
import re
import socket
import tarfile
from pathlib import Path

import pytest

from pix2pix.cli import main
from pix2pix.data import find_pairs
from pix2pix.data.tools import download
from pix2pix.data.tools.download import URL_VARIABLE, DownloadError, download_dataset, extract_safely
from tests.helpers import write_pairs


def make_dataset_archive(tmp_path: Path, top: str = "facades") -> bytes:
    """A tiny dataset archive laid out like the real ones: TOP/{train,val}/N.png (TOP "" for no top folder)."""
    source = tmp_path / "source"
    write_pairs(source, "train", 4)
    write_pairs(source, "val", 2, seed=1)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for split in ("train", "val"):
            tar.add(source / split, arcname=f"{top}/{split}" if top else split)
    return buffer.getvalue()


def make_archive(members: list[tarfile.TarInfo]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member in members:
            data = b"pwned" if member.isfile() else None
            if data is not None:
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


# Each link resolves inside the folder when it is extracted, yet facades/a leads two levels above
# facades/ once b (-> .) and the folder c exist: facades/b/c/../../.. = facades/c/../../.. = facades/../..
LINK_CHAIN = [
    member("facades/a", tarfile.SYMTYPE, "b/c/../../.."),
    member("facades/b", tarfile.SYMTYPE, "."),
    member("facades/c", tarfile.DIRTYPE),
]


def test_download_through_the_cli_unpacks_the_dataset(server, tmp_path, capsys):
    server.files["/facades.tar.gz"] = make_dataset_archive(tmp_path)
    root = tmp_path / "datasets"
    assert main(["data", "download", "facades", "--root", str(root), "--url", server.url, "--quiet"]) == 0
    assert len(find_pairs(root / "facades", "train")) == 4 and len(find_pairs(root / "facades", "val")) == 2
    assert sorted(p.name for p in root.iterdir()) == ["facades"]  # archive and staging folder are gone
    assert str(root / "facades") in capsys.readouterr().out
    # a second run finds the folder and does not download again
    assert download_dataset("facades", root, base_url=server.url, progress=False) == root / "facades"
    assert len(server.ranges) == 1


@pytest.mark.parametrize("top", ["maps", ""], ids=["top-folder", "no-top-folder"])
def test_the_base_url_comes_from_the_environment(server, tmp_path, monkeypatch, top):
    server.files["/maps.tar.gz"] = make_dataset_archive(tmp_path, top)
    monkeypatch.setenv(URL_VARIABLE, server.url + "/")
    target = download_dataset("maps", tmp_path / "datasets", progress=False)
    assert target == tmp_path / "datasets" / "maps" and len(find_pairs(target, "train")) == 4


def test_a_partial_download_resumes_with_a_range_request(server, tmp_path):
    archive = make_dataset_archive(tmp_path)
    server.files["/facades.tar.gz"] = archive
    root = tmp_path / "datasets"
    root.mkdir()
    (root / "facades.tar.gz.part").write_bytes(archive[:100])
    download_dataset("facades", root, base_url=server.url, progress=False)
    assert server.ranges == ["bytes=100-"]
    assert len(find_pairs(root / "facades", "train")) == 4


def test_a_cut_connection_fails_the_size_check_then_resumes(server, tmp_path):
    archive = make_dataset_archive(tmp_path)
    server.files["/facades.tar.gz"] = archive
    server.cut_after = 300
    root = tmp_path / "datasets"
    with pytest.raises(DownloadError, match=f"stopped at 300 of {len(archive)} bytes.*run the command again"):
        download_dataset("facades", root, base_url=server.url, progress=False)
    assert (root / "facades.tar.gz.part").stat().st_size == 300 and not (root / "facades").exists()
    server.cut_after = None
    download_dataset("facades", root, base_url=server.url, progress=False)
    assert server.ranges == [None, "bytes=300-"]
    assert len(find_pairs(root / "facades", "train")) == 4


def test_a_server_that_ignores_range_restarts_the_file(server, tmp_path):
    archive = make_dataset_archive(tmp_path)
    server.files["/facades.tar.gz"] = archive
    server.honour_range = False
    root = tmp_path / "datasets"
    root.mkdir()
    (root / "facades.tar.gz.part").write_bytes(b"x" * 50)  # would corrupt the archive if appended to
    download_dataset("facades", root, base_url=server.url, progress=False)
    assert len(find_pairs(root / "facades", "val")) == 2


@pytest.mark.parametrize("longer", [False, True], ids=["part-shorter", "part-longer-than-the-file"])
def test_a_206_for_another_range_deletes_the_part_file(server, tmp_path, longer):
    archive = make_dataset_archive(tmp_path)
    server.files["/facades.tar.gz"] = archive
    server.answer_from = 0  # every reply is "206 bytes 0-END/SIZE", whatever range was asked for
    root = tmp_path / "datasets"
    root.mkdir()
    part_size = len(archive) + 50 if longer else 50
    (root / "facades.tar.gz.part").write_bytes(b"x" * part_size)  # appending to it would corrupt it for good
    with pytest.raises(DownloadError, match=f"resume at byte {part_size}.*another range.*deleted.*afresh"):
        download_dataset("facades", root, base_url=server.url, progress=False)
    assert list(root.iterdir()) == []
    # the next run starts from zero, and a 206 that starts where asked (byte 0) is accepted
    download_dataset("facades", root, base_url=server.url, progress=False)
    assert server.ranges == [f"bytes={part_size}-", None]
    assert len(find_pairs(root / "facades", "train")) == 4


def test_more_bytes_than_the_servers_size_delete_the_part_file(server, tmp_path):
    server.files["/facades.tar.gz"] = b""
    # no Content-Length, so the body runs to the end of the connection: 20 bytes of a 10-byte file
    server.raw_reply = b"HTTP/1.0 206 Partial Content\r\nContent-Range: bytes 0-9/10\r\n\r\n" + b"x" * 20
    with pytest.raises(DownloadError, match="received 20 bytes, more than the server's size of 10; deleted"):
        download_dataset("facades", tmp_path, base_url=server.url, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_reply_that_is_not_http_gives_one_clear_line(server, tmp_path, capsys):
    server.files["/facades.tar.gz"] = make_dataset_archive(tmp_path)
    server.raw_reply = b"NOT HTTP AT ALL\r\n\r\n"
    root = tmp_path / "d"
    code = main(["data", "download", "facades", "--root", str(root), "--url", server.url, "--quiet"])
    error = capsys.readouterr().err
    assert code == 1 and error.count("\n") == 1
    assert f"{server.url}/facades.tar.gz" in error and "not a valid HTTP reply" in error
    assert list(root.iterdir()) == []


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ([member("{outside}/pwned.txt")], "absolute path"),
        ([member("facades/../../../pwned.txt")], r"'\.\.' in its path"),
        (
            [member("facades/link", tarfile.SYMTYPE, "../../../../outside"), member("facades/link/pwned.txt")],
            "symbolic link",
        ),
        ([member("facades/link", tarfile.SYMTYPE, "{outside}"), member("facades/link/pwned.txt")], "symbolic link"),
        (LINK_CHAIN, "symbolic link"),
        ([member("facades/link", tarfile.SYMTYPE, "train/ok.txt")], "symbolic link"),
        ([member("facades/hard", tarfile.LNKTYPE, "../../../pwned.txt")], "hard link"),
        ([member("facades/hard", tarfile.LNKTYPE, "facades/train/ok.txt")], "hard link"),
        ([member("facades/fifo", tarfile.FIFOTYPE)], "FIFO"),
    ],
    ids=[
        "absolute",
        "dotdot",
        "relative-symlink",
        "absolute-symlink",
        "symlink-chain",
        "symlink-inside",
        "hardlink",
        "hardlink-inside",
        "fifo",
    ],
)
def test_a_malicious_archive_is_refused_and_nothing_is_written(server, tmp_path, members, reason):
    outside = tmp_path / "outside"
    for item in members:
        item.name = item.name.format(outside=outside)
        item.linkname = item.linkname.format(outside=outside)
    # a harmless member first: refusing must also remove what was already extracted
    server.files["/facades.tar.gz"] = make_archive([member("facades/train/ok.txt"), *members])
    root = tmp_path / "deep" / "datasets"
    bad = re.escape(members[0].name)  # the first unsafe member stops the extraction
    with pytest.raises(DownloadError, match=f"refusing member '{bad}': .*{reason}.*nothing was extracted"):
        download_dataset("facades", root, base_url=server.url, progress=False)
    assert not outside.exists() and not (tmp_path / "deep" / "pwned.txt").exists()
    assert list(root.iterdir()) == []  # no partial folder, and no archive for the next run to reuse


# Archives whose members clash: each made tarfile fail with an OSError half-way through the extraction.
CLASHES = {
    "folder-then-file": (
        [member("facades/train", tarfile.DIRTYPE), member("facades/train/sub/f"), member("facades/train")],
        "facades/train",
        "appears twice",
    ),
    "file-then-folder": (
        [member("facades/a"), member("facades/a", tarfile.DIRTYPE), member("facades/a/f")],
        "facades/a",
        "appears twice",
    ),
    "file-as-folder": ([member("facades/a"), member("facades/a/b")], "facades/a/b", "'facades/a' is a file"),
    "empty-name": ([member("")], "", "empty name"),
}


@pytest.mark.parametrize(("members", "bad", "reason"), CLASHES.values(), ids=CLASHES.keys())
def test_clashing_members_are_refused_and_the_archive_deleted(server, tmp_path, members, bad, reason):
    server.files["/facades.tar.gz"] = make_archive([member("facades/train/ok.txt"), *members])
    root = tmp_path / "datasets"
    with pytest.raises(DownloadError, match=f"refusing member '{bad}': .*{reason}.*nothing was extracted.*deleted"):
        download_dataset("facades", root, base_url=server.url, progress=False)
    assert list(root.iterdir()) == []
    server.files["/facades.tar.gz"] = make_dataset_archive(tmp_path)
    download_dataset("facades", root, base_url=server.url, progress=False)
    assert len(server.ranges) == 2 and len(find_pairs(root / "facades", "train")) == 4


@pytest.mark.parametrize(("members", "bad", "reason"), CLASHES.values(), ids=CLASHES.keys())
def test_an_os_error_while_extracting_is_a_refusal(server, tmp_path, monkeypatch, members, bad, reason):
    # past the member checks, tarfile's OSError must still delete the archive and the staging folder
    monkeypatch.setattr(download, "find_unsafe_member_problem", lambda member: None)
    monkeypatch.setattr(download, "find_member_clash", lambda members: None, raising=False)
    server.files["/facades.tar.gz"] = make_archive([member("facades/train/ok.txt"), *members])
    root = tmp_path / "datasets"
    with pytest.raises(DownloadError, match=r"refusing it: extraction failed \(.*\); nothing was kept; deleted"):
        download_dataset("facades", root, base_url=server.url, progress=False)
    assert list(root.iterdir()) == []


def archive_of_zeros(megabytes: int) -> bytes:
    """An archive whose one file of zeros unpacks to about 1000x the archive's size."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = member("facades/train/zeros.png")
        info.size = megabytes << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    return buffer.getvalue()


def test_a_decompression_bomb_is_refused_before_anything_is_written(server, tmp_path):
    server.files["/facades.tar.gz"] = archive_of_zeros(64)
    root = tmp_path / "datasets"
    with pytest.raises(DownloadError, match=r"claims to unpack 64 MiB from 0\.\d MiB \(a decompression bomb\)"):
        download_dataset("facades", root, base_url=server.url, progress=False)
    assert list(root.iterdir()) == []


def test_an_archive_larger_than_the_free_space_is_refused(server, tmp_path, monkeypatch):
    server.files["/facades.tar.gz"] = make_dataset_archive(tmp_path)
    real_usage = download.shutil.disk_usage
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: real_usage(path)._replace(free=50 << 20))
    root = tmp_path / "datasets"
    with pytest.raises(DownloadError, match=r"has 50 MiB free \(100 MiB is kept free\); nothing was extracted"):
        download_dataset("facades", root, base_url=server.url, progress=False)
    assert [path.name for path in root.iterdir()] == ["facades.tar.gz"]  # kept: it is the disk that is short
    monkeypatch.undo()
    download_dataset("facades", root, base_url=server.url, progress=False)  # after a clean-up: no new download
    assert len(server.ranges) == 1 and len(find_pairs(root / "facades", "train")) == 4


def test_an_archive_of_more_files_than_the_disk_has_left_is_refused(server, tmp_path, monkeypatch):
    import os

    server.files["/facades.tar.gz"] = make_dataset_archive(tmp_path)
    real_statvfs = os.statvfs

    def few_files_left(path):
        usage = real_statvfs(path)
        return os.statvfs_result((*usage[:7], 3, *usage[8:]))  # f_favail: room for 3 more files

    monkeypatch.setattr(download.os, "statvfs", few_files_left)
    root = tmp_path / "datasets"
    with pytest.raises(download.NotEnoughSpace, match=r"holds \d+ files and folders, but .* room for 3 more"):
        download_dataset("facades", root, base_url=server.url, progress=False)
    assert [path.name for path in root.iterdir()] == ["facades.tar.gz"]


def test_a_disk_that_fills_during_the_extraction_keeps_the_archive(server, tmp_path, monkeypatch):
    import errno

    server.files["/facades.tar.gz"] = make_dataset_archive(tmp_path)

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download.tarfile.TarFile, "extractall", full_disk)
    root = tmp_path / "datasets"
    with pytest.raises(download.NotEnoughSpace, match="the disk filled during the extraction; nothing was kept"):
        download_dataset("facades", root, base_url=server.url, progress=False)
    assert [path.name for path in root.iterdir()] == ["facades.tar.gz"]


def test_a_refused_archive_is_downloaded_afresh_next_time(server, tmp_path):
    server.files["/facades.tar.gz"] = make_archive(LINK_CHAIN)
    root = tmp_path / "datasets"
    with pytest.raises(DownloadError, match="deleted the archive"):
        download_dataset("facades", root, base_url=server.url, progress=False)
    server.files["/facades.tar.gz"] = make_dataset_archive(tmp_path)
    download_dataset("facades", root, base_url=server.url, progress=False)
    assert len(server.ranges) == 2 and len(find_pairs(root / "facades", "train")) == 4


def test_paths_resolving_outside_are_refused_even_past_the_member_checks(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "find_unsafe_member_problem", lambda member: None)
    archive = tmp_path / "chain.tar.gz"
    archive.write_bytes(make_archive(LINK_CHAIN))
    with pytest.raises(DownloadError, match="refusing facades/a: it resolves outside"):
        extract_safely(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_cli_reports_a_malicious_archive_in_one_line(server, tmp_path, capsys):
    server.files["/facades.tar.gz"] = make_archive([member("../evil.txt")])
    code = main(["data", "download", "facades", "--root", str(tmp_path / "d"), "--url", server.url, "--quiet"])
    error = capsys.readouterr().err
    assert code == 1 and error.count("\n") == 1 and "refusing member '../evil.txt'" in error
    assert not (tmp_path / "evil.txt").exists()


def test_an_unreachable_server_gives_one_clear_line(tmp_path, capsys):
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    code = main(["data", "download", "facades", "--root", str(tmp_path), "--url", url, "--quiet"])
    error = capsys.readouterr().err
    assert code == 1 and error.count("\n") == 1
    assert error.startswith("pix2pix data: error:") and "cannot reach the server" in error and url in error
    assert not (tmp_path / "facades").exists()


def test_http_errors_and_damaged_archives_are_clear(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP error 404"):
        download_dataset("night2day", tmp_path, base_url=server.url, progress=False)
    server.files["/edges2shoes.tar.gz"] = b"this is not a gzip file"
    with pytest.raises(DownloadError, match="not a readable .tar.gz.*deleted the archive"):
        download_dataset("edges2shoes", tmp_path, base_url=server.url, progress=False)
    assert not (tmp_path / "edges2shoes").exists() and not (tmp_path / ".edges2shoes.extracting").exists()
    assert not (tmp_path / "edges2shoes.tar.gz").exists()


def test_bad_names_and_urls_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'shoes'; available: facades"):
        download_dataset("shoes", tmp_path)
    with pytest.raises(ValueError, match="must start with http"):
        download_dataset("facades", tmp_path, base_url="ftp://example.org")


def test_an_archive_of_the_pinned_sha256_is_unpacked_and_its_digest_logged(server, tmp_path, caplog):
    archive = make_dataset_archive(tmp_path)
    server.files["/facades.tar.gz"] = archive
    digest = hashlib.sha256(archive).hexdigest()
    with caplog.at_level(logging.INFO, logger="pix2pix"):
        target = download_dataset(
            "facades", tmp_path / "datasets", base_url=server.url, sha256=digest.upper(), progress=False
        )
    assert len(find_pairs(target, "train")) == 4
    assert f"facades.tar.gz: SHA-256 {digest}" in caplog.text  # what a user pins next time


def test_an_archive_neither_pinned_nor_logged_is_not_hashed(server, tmp_path, monkeypatch):
    server.files["/facades.tar.gz"] = make_dataset_archive(tmp_path)
    monkeypatch.setattr(download, "sha256_of", lambda path: pytest.fail(f"{path} was hashed"))
    target = download_dataset("facades", tmp_path / "datasets", base_url=server.url, progress=False)
    assert len(find_pairs(target, "train")) == 4


def test_an_archive_of_another_sha256_is_deleted_and_nothing_unpacked(server, tmp_path, capsys):
    server.files["/facades.tar.gz"] = make_dataset_archive(tmp_path)
    root = tmp_path / "datasets"
    pinned = "0" * 64
    code = main(
        ["data", "download", "facades", "--root", str(root), "--url", server.url, "--sha256", pinned, "--quiet"]
    )
    error = capsys.readouterr().err
    assert code == 1 and error.count("\n") == 1 and f"is not the expected {pinned}; deleted the archive" in error
    assert list(root.iterdir()) == []  # neither the archive nor a dataset folder


def test_a_malformed_sha256_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "download", "facades", "--root", str(tmp_path), "--sha256", "abc"])
    assert exit_info.value.code == 2 and "expected 64 hexadecimal digits" in capsys.readouterr().err
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        download_dataset("facades", tmp_path, sha256="xyz")
