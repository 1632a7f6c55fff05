"""A local HTTP server on 127.0.0.1 that serves real-markup ShareGPT pages and misbehaves on purpose.

A page id's first two letters choose its behaviour (ids stay 7 alphanumerics, like ShareGPT's):

    ok  200 with the page                    rl  429 + Retry-After: 1 once, then 200
    er  500 twice, then 200                  ea  500 always
    sf  slower than the client's timeout once, then 200
    sl  slower than the client's timeout always
    tr  Content-Length larger than the body sent (connection closed early), always
    rx  302 to another host                  ry  302 to another path on this host, then 200
    hg  60 MB body with Content-Length       hs  60 MB body without Content-Length (read until close)
    bu  200 with bytes that are not UTF-8    nf  404     go  410     bl  403
    rp  302 to the same path at `other_origin` (another port of 127.0.0.1, say); 200 without one
    cl  Content-Length: 40 on the whole page (the server lies short; the connection then closes)
    em  200 with an empty body              nd  200 with an HTML page that has no __NEXT_DATA__
    tb  200 at once, then the page in TRICKLE_SLICES slices TRICKLE_SECONDS apart (a slow link)
    th  200 at once, then 1 MiB every TRICKLE_SECONDS without Content-Length, up to 60 MB

Every request is recorded (path, time), so tests can count how often each page was fetched.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from demo.chatgpt_html import as_captured, sharegpt_page_html

HUGE_BYTES = 60 * 1024 * 1024
# Far above the tests' head timeout (3 s), which is far above a page's head time on a loaded machine.
SLOW_SECONDS = 8.0
SHORT_CONTENT_LENGTH = 40
TRICKLE_SECONDS = 0.15
TRICKLE_SLICES = 4
NO_NEXT_DATA_PAGE = b"<!DOCTYPE html><html><head><title>ShareGPT</title></head><body>Log in</body></html>"


def page_bytes(page_id: str, conversation: dict) -> bytes:
    items = as_captured(conversation["conversations"])
    return sharegpt_page_html(page_id=page_id, items=items).encode("utf-8")


class MisbehavingServer:
    """Serves /c/<id>; `conversations` gives each id its (real) conversation."""

    def __init__(
        self, conversation_for: Callable[[str], dict], *, ok_delay: float = 0.0, other_origin: str = ""
    ) -> None:
        self.conversation_for = conversation_for
        self.ok_delay = ok_delay
        self.other_origin = other_origin
        self.requests: list[tuple[str, float]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MisbehavingServer:
        self.thread.start()
        return self

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        """Every request's path as it reached the server, in order."""
        with self.lock:
            return [path for path, _ in self.requests]

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def hits(self) -> Counter[str]:
        """Requests per page id (redirect targets count under their own path's id)."""
        with self.lock:
            return Counter(path.rsplit("/", 1)[-1] for path, _ in self.requests)

    def times(self, page_id: str) -> list[float]:
        with self.lock:
            return [t for path, t in self.requests if path.endswith("/" + page_id)]

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.requests.append((h.path, time.monotonic()))
            seen = sum(1 for path, _ in self.requests if path == h.path)
        page_id = h.path.rsplit("/", 1)[-1]
        kind = page_id[:2]
        if kind == "rl" and seen == 1:
            return self._send(h, 429, b"slow down", {"Retry-After": "1"})
        if kind == "er" and seen <= 2 or kind == "ea":
            return self._send(h, 500, b"internal error")
        if kind == "sl" or kind == "sf" and seen == 1:
            time.sleep(SLOW_SECONDS)
        if kind == "nf":
            return self._send(h, 404, b"not found")
        if kind == "go":
            return self._send(h, 410, b"gone")
        if kind == "bl":
            return self._send(h, 403, b"forbidden")
        if kind == "rx":
            return self._send(h, 302, b"", {"Location": f"http://evil.example.com/c/{page_id}"})
        if kind == "ry" and h.path.startswith("/c/"):
            return self._send(h, 302, b"", {"Location": f"/moved/{page_id}"})
        if kind == "rp" and self.other_origin:
            return self._send(h, 302, b"", {"Location": f"{self.other_origin}{h.path}"})
        if kind == "em":
            return self._send(h, 200, b"", {"Content-Type": "text/html; charset=utf-8"})
        if kind == "nd":
            return self._send(h, 200, NO_NEXT_DATA_PAGE, {"Content-Type": "text/html; charset=utf-8"})
        if kind == "tr":
            return self._send_truncated(h)
        if kind in ("hg", "hs"):
            return self._send_huge(h, with_length=kind == "hg")
        if kind == "th":
            return self._send_huge(h, with_length=False, pause=TRICKLE_SECONDS)
        body = page_bytes(page_id, self.conversation_for(page_id))
        if kind == "bu":
            # inside the page data (__NEXT_DATA__ JSON), where ingest reads; bytes elsewhere are ignored
            start = body.index(b"{", body.index(b'id="__NEXT_DATA__"'))
            body = body[: start + 1] + b'"x\xff\xfe":1,' + body[start + 1 :]
        if kind == "cl":
            return self._send_short_length(h, body)
        if kind == "tb":
            return self._send_trickled(h, body)
        if self.ok_delay:
            time.sleep(self.ok_delay)
        self._send(h, 200, body, {"Content-Type": "text/html; charset=utf-8"})

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        h.send_response(status)
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    @staticmethod
    def _send_truncated(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100000")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(b"<html>" + b"x" * 1000)
        h.wfile.flush()
        h.close_connection = True

    @staticmethod
    def _send_short_length(h: BaseHTTPRequestHandler, body: bytes) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(SHORT_CONTENT_LENGTH))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body)
        h.close_connection = True

    @staticmethod
    def _send_trickled(h: BaseHTTPRequestHandler, body: bytes) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.flush()
        step = -(-len(body) // TRICKLE_SLICES)
        for start in range(0, len(body), step):
            time.sleep(TRICKLE_SECONDS)
            h.wfile.write(body[start : start + step])
            h.wfile.flush()

    @staticmethod
    def _send_huge(h: BaseHTTPRequestHandler, *, with_length: bool, pause: float = 0.0) -> None:
        h.send_response(200)
        if with_length:
            h.send_header("Content-Length", str(HUGE_BYTES))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.flush()
        chunk = b"<p>" + b"y" * (1024 * 1024 - 3)
        try:
            for _ in range(HUGE_BYTES // len(chunk)):
                if pause:
                    time.sleep(pause)
                h.wfile.write(chunk)
                h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading at its size cap, as it should
        h.close_connection = True
