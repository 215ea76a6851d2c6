"""A small HTTP server on 127.0.0.1 that plays a publisher's file server and the Hub.

Publisher files: GET/HEAD /files/NAME, with Range support, and per-file misbehaviour (cut the
connection after N bytes once, slow down). Hub files: HEAD/GET
/ORG/REPO/resolve/REVISION/FILE with the headers huggingface-hub reads (X-Repo-Commit,
X-Linked-Etag = the sha256, sizes). Everything it serves is registered by the tests.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    data: bytes
    cut_after: int | None = None  # close the connection after this many bytes, once
    delay: float = 0.0  # seconds to sleep per 64 KiB sent
    etag: str | None = None  # Hub hash to announce (default: the real sha256)
    # Misbehaviour instead of an answer: "chunk-cut" (a chunked body cut inside a chunk),
    # "garbage" (no HTTP status line), "headers" (150 header lines), "drip" (the body one
    # byte at a time, `delay` seconds apart), "endless" (a body with no length, never ending).
    misbehave: str | None = None
    requests: list[dict] = field(default_factory=list)


class FakeServer:
    COMMIT = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.hub: dict[tuple[str, str], Served] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, head: bool) -> None:
                served, hub = server._lookup(self.path)
                if served is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    if hub:
                        self.send_header("X-Error-Code", "EntryNotFound")
                    self.end_headers()
                    return
                served.requests.append({"method": self.command, "range": self.headers.get("Range")})
                if served.misbehave:
                    self._misbehave(served)
                    return
                start = 0
                match = re.match(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match:
                    start = int(match.group(1))
                    if start >= len(served.data):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                body = served.data[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                if hub:
                    digest = served.etag or hashlib.sha256(served.data).hexdigest()
                    self.send_header("X-Repo-Commit", FakeServer.COMMIT)
                    self.send_header("X-Linked-Etag", f'"{digest}"')
                    self.send_header("ETag", f'"{digest}"')
                    self.send_header("X-Linked-Size", str(len(served.data)))
                self.end_headers()
                if head:
                    return
                limit = len(body)
                if served.cut_after is not None and not head:
                    limit = min(limit, served.cut_after)
                    served.cut_after = None
                sent = 0
                while sent < limit:
                    block = body[sent:min(limit, sent + 65536)]
                    try:
                        self.wfile.write(block)
                        self.wfile.flush()
                    except OSError:
                        return
                    sent += len(block)
                    if served.delay:
                        time.sleep(served.delay)
                if limit < len(body):
                    self.close_connection = True
                    self.connection.shutdown(2)

            def _misbehave(self, served: Served) -> None:
                self.close_connection = True
                raw = self.wfile
                try:
                    if served.misbehave == "garbage":
                        raw.write(b"HELLO THERE\r\n\r\n")
                    elif served.misbehave == "headers":
                        raw.write(b"HTTP/1.1 200 OK\r\n")
                        raw.write(b"".join(b"X-Filler-%d: x\r\n" % i for i in range(150)))
                        raw.write(b"Content-Length: 1\r\n\r\nx")
                    elif served.misbehave == "chunk-cut":
                        raw.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                        raw.write(b"400\r\n" + served.data[:1024] + b"\r\n")
                        raw.write(b"400\r\n" + served.data[1024:1100])  # cut inside a chunk
                    elif served.misbehave == "drip":
                        raw.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                                  % len(served.data))
                        for byte in served.data:
                            raw.write(bytes([byte]))
                            raw.flush()
                            time.sleep(served.delay)
                    elif served.misbehave == "endless":
                        raw.write(b"HTTP/1.1 200 OK\r\n\r\n")
                        block = b"\0" * 65536
                        while True:
                            raw.write(block)
                    raw.flush()
                    self.connection.shutdown(2)
                except OSError:
                    return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def _lookup(self, path: str) -> tuple[Served | None, bool]:
        path = path.split("?", 1)[0]
        if path.startswith("/files/"):
            return self.files.get(path[len("/files/"):]), False
        match = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if match:
            repo, _revision, filename = match.groups()
            return self.hub.get((repo, filename)), True
        return None, False

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
