"""A local stand-in for the Hugging Face Hub and for plain download hosts, for the download tests.

It speaks just enough of both protocols: ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}`` with the
headers huggingface_hub reads (X-Repo-Commit, ETag, Content-Length), and ``GET /files/{name}`` with HTTP
Range. It counts requests (so a test can prove a cached model costs none), can cut a response short (to test
resume), can slow responses down (to make two concurrent pulls overlap), and can answer with an error code.

Child processes started by a test reach the same server through its URL.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class ServerState:
    """What the server serves and how it misbehaves; tests mutate it between requests."""

    files: dict[str, bytes] = field(default_factory=dict)  # "/files/x.bin" or "/org/repo/resolve/rev/x.bin"
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, Range header)
    cut_after: int | None = None  # GET bodies stop after this many bytes, then the connection closes
    cuts_left: int = 0  # how many GETs get cut
    delay_s: float = 0.0  # sleep between 64 KiB chunks
    error_code: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, method: str | None = None) -> int:
        with self.lock:
            return sum(1 for m, _, _ in self.requests if method is None or m == method)

    def methods(self) -> Counter[str]:
        with self.lock:
            return Counter(m for m, _, _ in self.requests)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base-class signature
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        state = self.server.state
        with state.lock:
            state.requests.append((self.command, self.path, self.headers.get("Range")))
            data = state.files.get(self.path.split("?", 1)[0])
            error = state.error_code
        if error is not None or data is None:
            self.send_response(error or 404)
            self.send_header("Content-Length", "0")
            if data is None and "/resolve/" in self.path:
                self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            return
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first = rng[6:].split("-", 1)[0]
            start = int(first) if first.isdigit() else 0
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if "/resolve/" in self.path:  # what huggingface_hub reads from a HEAD
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.end_headers()
        if not body:
            return
        limit = len(data)
        with state.lock:
            if state.cuts_left > 0 and state.cut_after is not None:
                state.cuts_left -= 1
                limit = min(limit, start + state.cut_after)
        pos = start
        while pos < limit:
            end = min(limit, pos + 65536)
            self.wfile.write(data[pos:end])
            self.wfile.flush()
            pos = end
            if state.delay_s:
                time.sleep(state.delay_s)
        if limit < len(data):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ServerState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class LocalHub:
    """A running server on 127.0.0.1; ``url`` is its base, ``state`` its contents and behaviour."""

    def __init__(self) -> None:
        self.state = ServerState()
        self._server = _Server(self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_file(self, name: str, data: bytes) -> str:
        """Serve ``data`` at ``/files/name``; returns its URL."""
        self.state.files[f"/files/{name}"] = data
        return f"{self.url}/files/{name}"

    def add_hf_file(self, repo_id: str, revision: str, filename: str, data: bytes) -> None:
        self.state.files[f"/{repo_id}/resolve/{revision}/{filename}"] = data

    def __enter__(self) -> LocalHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
