"""An HTTP proxy on 127.0.0.1 that loses a share of the requests to a real server, the two ways a flaky network
does: before the server sees a request (the client gets no answer, nothing happened), or after the server
acted on it (the client gets no answer, but the run was created or the metrics were written). Seeded and
bounded: at most `max_failures` failures, none in the first `grace` requests (the launch's reachability check)."""

from __future__ import annotations

import http.client
import http.server
import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class FlakyProxy(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, upstream_port: int, rate: float = 0.3, seed: int = 0, max_failures: int = 200, grace: int = 5
    ) -> None:
        self.upstream_port, self.rate, self.max_failures, self.grace = upstream_port, rate, max_failures, grace
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.requests = 0
        self.failures: Counter[str] = Counter()  # "before" / "after" -> how many
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def fate(self) -> str:
        """ "pass", "before" (lost before the server) or "after" (lost after the server acted)."""
        with self.lock:
            self.requests += 1
            if self.requests <= self.grace or sum(self.failures.values()) >= self.max_failures:
                return "pass"
            draw = self.random.random()
            fate = "before" if draw < self.rate / 2 else "after" if draw < self.rate else "pass"
            if fate != "pass":
                self.failures[fate] += 1
            return fate


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FlakyProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        fate = self.server.fate()
        if fate == "before":
            self.close_connection = True  # the connection drops with no answer
            return
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        if fate == "after":
            self.close_connection = True  # the server acted; its answer is lost
            return
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in HOP_HEADERS:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _relay


@contextmanager
def flaky_proxy(upstream_port: int, **options: object) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(upstream_port, **options)  # type: ignore[arg-type]
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
