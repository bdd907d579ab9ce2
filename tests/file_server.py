"""A local HTTP file server for the download tests (datasets, pretrained models): nothing leaves 127.0.0.1."""

from __future__ import annotations

import http.server
import re


class FileServer(http.server.ThreadingHTTPServer):
    """Serves `files` ({"/name": bytes}); honours "Range: bytes=N-"; can cut a response short."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FileHandler)
        self.files: dict[str, bytes] = {}
        self.ranges: list[str | None] = []  # the Range header of each request
        self.cut_after: int | None = None  # send this many body bytes, then close the connection
        self.honour_range = True
        self.answer_from: int | None = None  # a broken server: answer 206 from this byte, whatever was asked
        self.raw_reply: bytes | None = None  # send these bytes instead of an HTTP response

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FileHandler(http.server.BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        requested = self.headers.get("Range")
        self.server.ranges.append(requested)
        if self.server.raw_reply is not None:
            self.wfile.write(self.server.raw_reply)
            return
        match = re.fullmatch(r"bytes=(\d+)-", requested or "")
        start = int(match.group(1)) if match and self.server.honour_range else 0
        ranged = start > 0
        if self.server.answer_from is not None:
            start, ranged = self.server.answer_from, True
        elif start >= len(body) > 0:
            self.send_error(416)
            return
        self.send_response(206 if ranged else 200)
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload if self.server.cut_after is None else payload[: self.server.cut_after])

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass
