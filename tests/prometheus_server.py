"""A real Prometheus for the provider tests, filled with recorded Istio-style series of known rates.

Use with ``pytest_plugins = ["tests.prometheus_server"]``. The session fixture installs Debian's ``prometheus`` when
it is missing (skipping with the reason only when that is impossible), backfills one hour of series with
``promtool tsdb create-blocks-from openmetrics`` straight into a fresh data directory (Prometheus loads blocks that
are present at start-up, so no flag is needed to see them), starts the server on a free 127.0.0.1 port and stops it
at the end. ``auth_proxy`` puts a tiny reverse proxy in front that demands a bearer token or basic auth.

Every series grows at a constant rate sampled every 15 s, so ``rate``/``increase`` over any window inside the hour
are exact whatever Prometheus' extrapolation does; :class:`Arm` holds those rates and tests derive expected values
from them instead of repeating numbers.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from e2e.sandbox.prometheus import PrometheusUnavailable, RunningPrometheus, ensure_installed, free_port

NAMESPACE = "shop"
TARGET = "podinfo"
IDLE_TARGET = "idle"  # series exist but never grow: 0/0 success rate → NaN
NO_HISTOGRAM_TARGET = "nohist"  # requests but no duration histogram
SCRAPE_STEP_S = 15
DURATION_S = 3600
# Istio/Envoy spell bucket boundaries %g-style; 1.8e+06 and 3.6e+06 exercise that.
LE_LABELS = (
    *("0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000"),
    *("30000", "60000", "300000", "600000", "1.8e+06", "3.6e+06"),
)

TOKEN = "s3cret-token"
USERNAME = "coalmine"
PASSWORD = "hunter2"


@dataclass(frozen=True)
class Arm:
    """One workload's constant per-second rates. ``cumulative`` maps an ``le`` boundary to the rate ≤ it."""

    workload: str
    ok_rate: float
    error_rate: float
    cumulative: dict[float, float] = field(default_factory=dict)

    @property
    def total_rate(self) -> float:
        return self.ok_rate + self.error_rate

    def bucket_rate(self, le: float) -> float:
        """Cumulative rate of requests ≤ ``le``: the largest listed boundary ≤ ``le`` (all above: the total)."""
        below = [rate for bound, rate in self.cumulative.items() if bound <= le]
        if le >= max(self.cumulative):
            return self.total_rate
        return max(below, default=0.0)


CANARY = Arm(TARGET, ok_rate=2.0, error_rate=0.2, cumulative={50: 0.4, 100: 1.0, 250: 1.6, 500: 1.9, 1000: 2.2})
PRIMARY = Arm(
    TARGET + "-primary", ok_rate=8.0, error_rate=0.2, cumulative={50: 2.0, 100: 6.0, 250: 7.8, 500: 8.0, 1000: 8.2}
)


@dataclass(frozen=True)
class RecordedPrometheus:
    """A running server, the time span its recorded series cover (epoch seconds, on the 15 s grid) and what they hold.

    Tests read the dataset from here rather than importing this module (which pytest loads as a plugin).
    """

    url: str
    start: float
    end: float
    namespace: str = NAMESPACE
    target: str = TARGET
    idle_target: str = IDLE_TARGET
    no_histogram_target: str = NO_HISTOGRAM_TARGET
    canary: Arm = CANARY
    primary: Arm = PRIMARY


def _le_value(label: str) -> float:
    return float(label)


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{key}="{value}"' for key, value in labels.items()) + "}"


def _series(name: str, labels: str, rate: float, start: int, offset: float = 1000.0) -> Iterator[str]:
    for step in range(DURATION_S // SCRAPE_STEP_S + 1):
        seconds = step * SCRAPE_STEP_S
        yield f"{name}{labels} {offset + rate * seconds:.6g} {start + seconds}"


def _request_labels(workload: str, code: str, namespace: str = NAMESPACE, reporter: str = "destination") -> str:
    return _labels(
        reporter=reporter,
        destination_workload=workload,
        destination_workload_namespace=namespace,
        response_code=code,
    )


def openmetrics(start: int) -> str:
    """The recorded series as an OpenMetrics document (one hour from ``start``)."""
    lines = ["# HELP istio_requests Requests.", "# TYPE istio_requests counter"]
    for arm in (CANARY, PRIMARY):
        lines += _series("istio_requests_total", _request_labels(arm.workload, "200"), arm.ok_rate, start)
        lines += _series("istio_requests_total", _request_labels(arm.workload, "503"), arm.error_rate, start)
    # Decoys the queries must ignore: the client-side report and a namesake in another namespace.
    lines += _series("istio_requests_total", _request_labels(TARGET, "503", reporter="source"), 50.0, start)
    lines += _series("istio_requests_total", _request_labels(TARGET, "503", namespace="other"), 50.0, start)
    lines += _series("istio_requests_total", _request_labels(IDLE_TARGET, "200"), 0.0, start)
    lines += _series("istio_requests_total", _request_labels(NO_HISTOGRAM_TARGET, "200"), 1.0, start)
    lines += _series("istio_requests_total", _request_labels(NO_HISTOGRAM_TARGET + "-primary", "200"), 1.0, start)
    lines += [
        "# HELP istio_request_duration_milliseconds Durations.",
        "# TYPE istio_request_duration_milliseconds histogram",
    ]
    for arm in (CANARY, PRIMARY):
        base = {
            "reporter": "destination",
            "destination_workload": arm.workload,
            "destination_workload_namespace": NAMESPACE,
        }
        for le in [*LE_LABELS, "+Inf"]:
            rate = arm.total_rate if le == "+Inf" else arm.bucket_rate(_le_value(le))
            lines += _series("istio_request_duration_milliseconds_bucket", _labels(**base, le=le), rate, start)
        lines += _series("istio_request_duration_milliseconds_count", _labels(**base), arm.total_rate, start)
        lines += _series("istio_request_duration_milliseconds_sum", _labels(**base), arm.total_rate * 200, start)
    lines += _envoy_series(start)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


ENVOY_PORT = "9898"


def _envoy_cluster(service: str, namespace: str = NAMESPACE) -> str:
    """Contour's stat name for a backend Service's cluster: ``<namespace>_<service>_<port>``."""
    return f"{namespace}_{service}_{ENVOY_PORT}"


def _envoy_series(start: int) -> list[str]:
    """The same two arms as Envoy upstream cluster statistics (the ``envoy`` query set), plus decoys."""
    lines = ["# HELP envoy_cluster_upstream_rq Upstream requests by code.", "# TYPE envoy_cluster_upstream_rq gauge"]
    clusters = ((CANARY, _envoy_cluster(TARGET + "-canary")), (PRIMARY, _envoy_cluster(TARGET + "-primary")))
    for arm, cluster in clusters:
        for code, rate in (("200", arm.ok_rate), ("503", arm.error_rate)):
            labels = _labels(envoy_cluster_name=cluster, envoy_response_code=code)
            lines += _series("envoy_cluster_upstream_rq", labels, rate, start)
    # Decoys: another service whose name starts like ours, and our name in another namespace.
    for cluster in (_envoy_cluster(TARGET + "x-canary"), _envoy_cluster(TARGET + "-canary", "other")):
        lines += _series(
            "envoy_cluster_upstream_rq", _labels(envoy_cluster_name=cluster, envoy_response_code="503"), 50.0, start
        )
    lines += ["# HELP envoy_cluster_upstream_rq_time Upstream time.", "# TYPE envoy_cluster_upstream_rq_time histogram"]
    for arm, cluster in clusters:
        for le in [*LE_LABELS, "+Inf"]:
            rate = arm.total_rate if le == "+Inf" else arm.bucket_rate(_le_value(le))
            labels = _labels(envoy_cluster_name=cluster, le=le)
            lines += _series("envoy_cluster_upstream_rq_time_bucket", labels, rate, start)
        labels = _labels(envoy_cluster_name=cluster)
        lines += _series("envoy_cluster_upstream_rq_time_count", labels, arm.total_rate, start)
        lines += _series("envoy_cluster_upstream_rq_time_sum", labels, arm.total_rate * 200, start)
    return lines


def _ensure_installed() -> None:
    try:
        ensure_installed()
    except PrometheusUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def recorded_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordedPrometheus]:
    """Prometheus with one hour of recorded Istio series, ending about two hours ago."""
    _ensure_installed()
    root = tmp_path_factory.mktemp("prometheus")
    data = root / "data"
    data.mkdir()
    # Old enough to stay clear of the (empty) head block, recent enough for the default retention.
    start = (int(time.time()) // 3600 - 3) * 3600
    source = root / "series.om"
    source.write_text(openmetrics(start))
    backfill = subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if backfill.returncode != 0:
        raise RuntimeError(f"promtool backfill failed:\n{backfill.stdout}\n{backfill.stderr}")
    with RunningPrometheus(root, "global:\n  scrape_interval: 1m\n", data_dir=data) as prometheus:
        yield RecordedPrometheus(url=prometheus.url, start=float(start), end=float(start + DURATION_S))


def _authorized(header: str | None) -> bool:
    basic = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    return header in (f"Bearer {TOKEN}", f"Basic {basic}")


@dataclass(frozen=True)
class AuthProxy:
    """A reverse proxy that forwards to Prometheus only with ``Bearer TOKEN`` or basic ``USERNAME:PASSWORD``."""

    url: str
    token: str = TOKEN
    username: str = USERNAME
    password: str = PASSWORD


@pytest.fixture(scope="session")
def auth_proxy(recorded_prometheus: RecordedPrometheus) -> Iterator[AuthProxy]:
    upstream = recorded_prometheus.url

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            if not _authorized(self.headers.get("Authorization")):
                self._answer(401, b'{"status":"error","error":"unauthorized"}', "application/json")
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            request = urllib.request.Request(upstream + self.path, data=body, method=self.command)
            if self.headers.get("Content-Type"):
                request.add_header("Content-Type", self.headers["Content-Type"])
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    self._answer(response.status, response.read(), response.headers.get("Content-Type", ""))
            except urllib.error.HTTPError as error:
                self._answer(error.code, error.read(), error.headers.get("Content-Type", ""))

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = _forward
        do_POST = _forward

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield AuthProxy(url=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An address that accepts TCP connections but never answers (for timeouts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def unreachable_address() -> str:
    """An address where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"
