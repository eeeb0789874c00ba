"""A real HTTP server on 127.0.0.1 for webhook and notification tests: scripted answers, recorded requests.

It runs ``http.server`` in a thread so the code under test talks real HTTP over a real socket (no transport
mocks). Each path answers from a script of :class:`Answer` s (the last one repeats); slow answers wait on an event
that closing the server sets, so a test never waits for a sleeping handler.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: str = ""
    delay_s: float = 0.0
    drip_s: float = 0.0  # > 0: send the headers, then one body byte per drip_s, never finishing


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Recorder:
    """Scripts per path and everything received, shared with the handler threads."""

    scripts: dict[str, list[Answer]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)
    base_url: str = ""

    def script(self, path: str, *answers: Answer) -> str:
        """Set the answers for ``path``; returns its full URL."""
        with self.lock:
            self.scripts[path] = list(answers)
        return self.base_url + path

    def requests_to(self, path: str) -> list[Received]:
        with self.lock:
            return [request for request in self.received if request.path == path]

    def _next(self, path: str) -> Answer:
        with self.lock:
            script = self.scripts.get(path) or [Answer(404, "no such path")]
            return script.pop(0) if len(script) > 1 else script[0]


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with recorder.lock:
                recorder.received.append(Received(self.path, dict(self.headers.items()), body, time.monotonic()))
            answer = recorder._next(self.path)
            if answer.delay_s and recorder.closing.wait(answer.delay_s):
                return
            payload = answer.body.encode()
            if answer.drip_s:
                self._drip(answer)
                return
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (timed out) first

        def do_GET(self) -> None:
            # A Prometheus client may query with GET: answered and recorded by path, without the query string.
            self.path = self.path.split("?", 1)[0]
            self.do_POST()

        def _drip(self, answer: Answer) -> None:
            try:
                self.send_response(answer.status)
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                while not recorder.closing.wait(answer.drip_s):
                    self.wfile.write(b".")
                    self.wfile.flush()
            except OSError:
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def serve() -> Iterator[Recorder]:
    """Start a server; yields its recorder; stops it (waking slow handlers) afterwards. Use as a fixture body."""
    recorder = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    server.daemon_threads = True
    recorder.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        recorder.closing.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url(path: str = "/") -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused at once): a dead receiver."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def answers(*statuses: int) -> Sequence[Answer]:
    return [Answer(status) for status in statuses]
