"""The dashboard's HTTP side: 127.0.0.1 only, the page and its assets, the JSON API, and Server-Sent Events.

The server acts with the user's credentials, so it must answer the user's browser and nothing else:

- it binds 127.0.0.1, and every request must name it (or ``localhost``) with our port in ``Host`` — a page on
  another site that rebinds its DNS name to 127.0.0.1 is refused (its ``Host`` is its own name);
- a POST (a button) must come from our origin (``Origin`` header, which browsers always send on a POST) and carry
  the per-run token that only our page holds (``X-Coalmine-Token``, from a ``<meta>`` in the page): another page
  can neither read the token nor set that header without a CORS preflight, which this server never grants;
- the page is served with a Content-Security-Policy of ``'self'`` and may not be framed.

Standard library only (:class:`ThreadingHTTPServer`): a thread per connection suits the plugin's blocking reads,
and an open page holds one thread for its event stream.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

from controller.cli.dashboard.api import Answer, DashboardApi

TOKEN_HEADER = "X-Coalmine-Token"
KEEPALIVE_S = 15.0
_STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
}
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def static_file(name: str) -> bytes | None:
    """A shipped asset by file name (package data, so it is in the wheel); None for anything else."""
    if "/" in name or "\\" in name or name.startswith(".") or not name:
        return None
    entry = resources.files("controller.cli.dashboard").joinpath("static", name)
    return entry.read_bytes() if entry.is_file() else None


class DashboardServer(ThreadingHTTPServer):
    """The HTTP server, holding the API, the run's token and the host names it answers to."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, api: DashboardApi, port: int, host: str = "127.0.0.1") -> None:
        super().__init__((host, port), _Handler)
        self.api = api
        self.token = secrets.token_urlsafe(32)
        bound = self.server_address[1]
        self.port = int(bound)
        self.allowed_hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start_background(self) -> None:
        """Serve from a daemon thread (tests, and the command while it waits for Ctrl-C)."""
        self._thread = threading.Thread(target=self.serve_forever, name="coalmine-dashboard", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.api.hub.stop()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the terminal shows the URL, not one line per poll."""

    # -- routing ----------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._host_ok():
            return
        path = urlsplit(self.path).path
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        api = self.server.api
        if path in ("/", "/index.html"):
            self._page()
        elif parts[:1] == ["static"] and len(parts) == 2:
            self._static(parts[1])
        elif parts == ["api", "session"]:
            self._json(api.session())
        elif parts == ["api", "rollouts"]:
            self._json(api.list_rollouts())
        elif parts[:2] == ["api", "rollouts"] and len(parts) == 4:
            self._json(api.rollout(parts[2], parts[3]))
        elif parts == ["api", "stream"]:
            self._stream()
        else:
            self._json((404, {"error": f"no such page: {path}"}))

    def do_POST(self) -> None:
        if not self._host_ok():
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, 65536)) if length else b""
        refusal = self._cross_site()
        if refusal:
            self._json((403, {"error": refusal, "refusedBy": "origin"}))
            return
        parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
        if parts[:2] != ["api", "rollouts"] or len(parts) != 5:
            self._json((404, {"error": "no such action"}))
            return
        try:
            body = json.loads(raw or b"{}")
            wait = body.get("wait") if isinstance(body, dict) else None
            wait_s = None if wait is None else float(wait)
        except (ValueError, TypeError):
            self._json((400, {"error": 'the body must be JSON like {"wait": 10}'}))
            return
        self._json(self.server.api.act(parts[2], parts[3], parts[4], wait_s))

    # -- checks -----------------------------------------------------------------------------------------------

    def _host_ok(self) -> bool:
        if self.headers.get("Host", "") in self.server.allowed_hosts:
            return True
        self._json((421, {"error": "this dashboard answers only to http://127.0.0.1 and http://localhost"}))
        return False

    def _cross_site(self) -> str:
        """Why a POST is refused (not from our page), or ""."""
        origin = self.headers.get("Origin")
        if origin is None or urlsplit(origin).netloc not in self.server.allowed_hosts:
            return "refused: the request does not come from this dashboard's page (Origin)"
        if urlsplit(origin).scheme != "http":
            return "refused: unexpected origin scheme"
        token = self.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(token.encode(), self.server.token.encode()):
            return "refused: missing or wrong dashboard token (reload the page)"
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return "refused: actions are JSON requests"
        return ""

    # -- answers ----------------------------------------------------------------------------------------------

    def _headers(self, status: int, content_type: str, length: int | None, *, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "max-age=60" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Frame-Options", "DENY")
        self.end_headers()

    def _json(self, answer: Answer) -> None:
        status, body = answer
        data = json.dumps(body, default=str).encode()
        self._headers(status, "application/json", len(data))
        self.wfile.write(data)

    def _page(self) -> None:
        page = static_file("index.html") or b""
        data = page.replace(b"{{TOKEN}}", self.server.token.encode())
        self._headers(HTTPStatus.OK, _STATIC_TYPES[".html"], len(data))
        self.wfile.write(data)

    def _static(self, name: str) -> None:
        data = static_file(name)
        suffix = name[name.rfind(".") :] if "." in name else ""
        if data is None or suffix not in _STATIC_TYPES or name == "index.html":
            self._json((404, {"error": f"no such asset: {name}"}))
            return
        self._headers(HTTPStatus.OK, _STATIC_TYPES[suffix], len(data))
        self.wfile.write(data)

    def _stream(self) -> None:
        """Server-Sent Events: ``change`` with a batch of notices whenever the watches see one, comments between
        so a proxy or the browser keeps the connection; ends when the page goes away or the server stops."""
        hub = self.server.api.hub
        self.close_connection = True
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        position = hub.seq
        try:
            self._event("hello", {"live": dict(hub.mode)})
            while not hub.stopped:
                position, changes = hub.wait(position, KEEPALIVE_S)
                if changes:
                    self._event("change", {"changes": changes, "live": dict(hub.mode)})
                else:
                    self.wfile.write(b": keepalive\n\n")
                    self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            return

    def _event(self, name: str, data: Any) -> None:
        self.wfile.write(f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n".encode())
        self.wfile.flush()
