"""The event-loop Prometheus provider (AsyncPrometheusProvider): the same answers and errors as the blocking one,
against the real Prometheus with recorded series and against scripted or misbehaving HTTP servers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest
from http_recorder import Answer, Recorder, serve

from controller.providers import (
    AmbiguousResult,
    ProviderAuthError,
    ProviderConfig,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnavailable,
    QueryRejected,
    UnknownProviderType,
    create_async_provider,
)
from controller.providers.looks import LookRequest, collect_look, collect_look_async
from controller.providers.prometheus import AsyncPrometheusProvider, PrometheusProvider
from controller.providers.queries import BuiltinMetric, BuiltinName
from controller.providers.querysets import QuerySetName

if TYPE_CHECKING:
    from prometheus_server import AuthProxy, RecordedPrometheus

pytest_plugins = ["prometheus_server"]

SEVEN = '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"7"]}]}}'


def _provider(url: str, **settings: object) -> AsyncPrometheusProvider:
    return AsyncPrometheusProvider(ProviderConfig(address=url, **settings))  # type: ignore[arg-type]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    yield from serve()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


# --- the real Prometheus: the same Look as the blocking provider --------------------------------------------------


def _requests(rec: RecordedPrometheus) -> list[LookRequest]:
    end = rec.start + 1800
    builtins = {
        "request-success-rate": BuiltinMetric(BuiltinName.REQUEST_SUCCESS_RATE),
        "request-duration": BuiltinMetric(BuiltinName.REQUEST_DURATION, interval_s=120),
    }
    selector = f'reporter="destination", destination_workload_namespace="{rec.namespace}", destination_workload'
    compared = {
        "rps": (
            f'sum(rate(istio_requests_total{{{selector}="{rec.target}"}}[1m]))',
            f'sum(rate(istio_requests_total{{{selector}="{rec.target}-primary"}}[1m]))',
        )
    }
    return [
        LookRequest(rec.namespace, rec.target, end - 300, end, counts=True, slow_threshold_ms=300),
        LookRequest(rec.namespace, rec.target, end - 60, end, thresholds=builtins, compared=compared),
        LookRequest(
            rec.namespace,
            rec.target,
            end - 300,
            end,
            counts=True,
            slow_threshold_ms=300,
            query_set=QuerySetName.ENVOY,
            service=rec.target,
        ),
        LookRequest(rec.namespace, rec.no_histogram_target, end - 60, end, counts=True, slow_threshold_ms=500),
        LookRequest(
            rec.namespace,
            rec.target,
            end - 60,
            end,
            thresholds={"broken": "sum(rate(x[1m]", "r": "istio_requests_total[1m]"},
        ),
    ]


@pytest.mark.prometheus
async def test_looks_read_on_the_event_loop_equal_the_blocking_ones(recorded_prometheus: RecordedPrometheus) -> None:
    rec = recorded_prometheus
    with PrometheusProvider(rec.url, timeout_s=5) as blocking:
        expected = [collect_look(blocking, request) for request in _requests(rec)]
    async with _provider(rec.url, timeout_s=5) as provider:
        looks = await asyncio.gather(*(collect_look_async(provider, request) for request in _requests(rec)))
    assert looks == expected
    counted, builtins, envoy, no_histogram, broken = looks
    assert counted.counts_error is None and counted.canary.requests > 0 and counted.primary.requests > 0
    assert envoy.canary == counted.canary and envoy.primary == counted.primary
    assert builtins.thresholds["request-success-rate"].value is not None
    assert builtins.compared["rps"].error is None and builtins.compared["rps"].canary == pytest.approx(
        rec.canary.total_rate
    )
    assert no_histogram.counts_error is not None and "le=500" in no_histogram.counts_error
    assert "rejected the query" in (broken.thresholds["broken"].error or "")
    assert "range vector" in (broken.thresholds["r"].error or "")


@pytest.mark.prometheus
async def test_prometheus_errors_are_the_blocking_providers_errors(recorded_prometheus: RecordedPrometheus) -> None:
    async with _provider(recorded_prometheus.url, timeout_s=5) as provider:
        assert await provider.is_online()
        with pytest.raises(QueryRejected, match="parse error") as caught:
            await provider.run_query("rate(istio_requests_total)")
        assert caught.value.query == "rate(istio_requests_total)"
        with pytest.raises(AmbiguousResult, match="expected one series"):
            await provider.run_query("istio_requests_total", at=recorded_prometheus.start + 1800)
        vector = await provider.run_vector(
            "sum by (destination_workload) (istio_requests_total)",
            "destination_workload",
            at=recorded_prometheus.start + 1800,
        )
        assert recorded_prometheus.target in vector


@pytest.mark.prometheus
@pytest.mark.parametrize("kind", ["bearer", "basic", "none", "bad-token"])
async def test_credentials_reach_prometheus_and_bad_ones_are_auth_errors(auth_proxy: AuthProxy, kind: str) -> None:
    credentials = {
        "bearer": {"token": auth_proxy.token},
        "basic": {"username": auth_proxy.username, "password": auth_proxy.password},
        "none": {},
        "bad-token": {"token": "wrong"},
    }[kind]
    async with _provider(auth_proxy.url, credentials=credentials, timeout_s=5) as provider:
        if kind in ("bearer", "basic"):
            assert (await provider.run_query("vector(7)")).value == 7
        else:
            with pytest.raises(ProviderAuthError, match="HTTP 401"):
                await provider.run_query("vector(1)")
            assert not await provider.is_online()


# --- scripted and misbehaving servers ------------------------------------------------------------------------------


async def test_the_timeout_parameter_the_evaluation_time_and_the_token_are_sent() -> None:
    seen: list[tuple[str, str]] = []

    class Record(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization", "")))
            body = SEVEN.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with _server(Record) as url:
        async with _provider(url, credentials={"token": "t0k"}, timeout_s=0.7) as provider:
            assert (await provider.run_query("vector(7)", at=1_700_000_000.5)).value == 7
        async with _provider(url, credentials={"username": "u", "password": "p"}) as provider:
            assert (await provider.run_query("vector(7)")).value == 7
    assert seen == [
        ("/api/v1/query?query=vector%287%29&timeout=700ms&time=1700000000.500", "Bearer t0k"),
        ("/api/v1/query?query=vector%287%29&timeout=10s", "Basic dTpw"),
    ]


async def test_http_errors_map_to_the_same_errors_and_messages_as_the_blocking_provider(recorder: Recorder) -> None:
    cases = [
        (
            Answer(400, '{"status":"error","error":"parse error: unexpected end"}'),
            QueryRejected,
            r"rejected the query \(HTTP 400\): parse error: unexpected end",
        ),
        (Answer(403, "forbidden"), ProviderAuthError, r"refused the credentials \(HTTP 403\)"),
        (Answer(500, "<html>oops</html>"), ProviderResponseError, r"answered HTTP 500: <html>oops</html>"),
        (Answer(200, "<html>login</html>"), ProviderResponseError, "invalid JSON"),
        (Answer(200, '{"status":"success"}'), ProviderResponseError, "without data.result"),
        (Answer(200, '{"data":{"result":[{"metric":{},"value":[1,"x"]}]}}'), ProviderResponseError, "non-numeric"),
    ]
    for answer, error, message in cases:
        recorder.script("/api/v1/query", answer)
        async with _provider(recorder.base_url, timeout_s=5) as provider:
            with pytest.raises(error, match=message):
                await provider.run_query("up")
        with PrometheusProvider(recorder.base_url, timeout_s=5) as blocking, pytest.raises(error, match=message):
            blocking.run_query("up")


async def test_infinite_values_are_passed_on_and_nan_is_no_data(recorder: Recorder) -> None:
    recorder.script("/api/v1/query", Answer(200, SEVEN.replace('"7"', '"+Inf"')))
    async with _provider(recorder.base_url, timeout_s=5) as provider:
        assert (await provider.run_query("up")).value == float("inf")  # bad data for the judge, never dropped
        recorder.script("/api/v1/query", Answer(200, SEVEN.replace('"7"', '"NaN"')))
        result = await provider.run_query("up")
        assert result.no_data and result.no_data_reason == "NaN"


async def test_a_503_is_retried_only_when_asked_and_a_timeout_never(recorder: Recorder) -> None:
    recorder.script("/api/v1/query", Answer(503, '{"status":"error","error":"overloaded"}'), Answer(200, SEVEN))
    async with _provider(recorder.base_url, timeout_s=2) as provider:
        with pytest.raises(ProviderResponseError, match="HTTP 503: overloaded"):
            await provider.run_query("up")
    recorder.script("/api/v1/query", Answer(503, "busy"), Answer(200, SEVEN))
    async with _provider(recorder.base_url, timeout_s=2, retries=1) as provider:
        assert (await provider.run_query("up")).value == 7
    assert len(recorder.requests_to("/api/v1/query")) == 3
    recorder.script("/api/v1/query", Answer(200, SEVEN, delay_s=5))
    async with _provider(recorder.base_url, timeout_s=0.3, retries=3) as provider:
        started = time.monotonic()
        with pytest.raises(ProviderTimeout, match=r"did not answer within 0\.3 s"):
            await provider.run_query("up")
        assert time.monotonic() - started < 2  # not sent again: a timeout is not retried
    assert len(recorder.requests_to("/api/v1/query")) == 4


async def test_unreachable_and_silent_servers(unreachable_address: str, silent_server: str) -> None:
    async with _provider(unreachable_address, timeout_s=2, retries=1) as provider:
        with pytest.raises(ProviderUnavailable, match="unreachable") as caught:
            await provider.run_query("vector(1)")
        assert caught.value.query == "vector(1)"
        assert not await provider.is_online()
        look = await collect_look_async(
            provider,
            LookRequest("ns", "app", 0, 60, thresholds={"x": "vector(1)"}, compared={"y": ("a", "b")}, counts=True),
        )
    assert "unreachable" in (look.thresholds["x"].error or "") and "canary: " in (look.compared["y"].error or "")
    assert look.counts_error and "unreachable" in look.counts_error
    async with _provider(silent_server, timeout_s=0.3) as provider:
        with pytest.raises(ProviderTimeout, match=r"within 0\.3 s"):
            await provider.run_query("vector(1)")


async def test_a_redirect_is_not_followed(recorder: Recorder) -> None:
    recorder.script("/api/v1/query", Answer(200, SEVEN))
    target_url = f"{recorder.base_url}/api/v1/query"

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", target_url)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with _server(Redirect) as url:
        async with _provider(url, credentials={"token": "t0k"}, timeout_s=5) as provider:
            with pytest.raises(ProviderResponseError, match=f"HTTP 302 \\(a redirect to {target_url}\\)"):
                await provider.run_query("up")
    assert recorder.received == []  # neither the request nor the token went to where it points


@dataclass
class _Load:
    """What a keep-alive server saw: connections (client ports) and the most requests in flight at once."""

    ports: set[int] = field(default_factory=set)
    in_flight: int = 0
    peak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def _server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_connections_are_bounded_kept_alive_and_answers_never_mixed() -> None:
    load = _Load()

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with load.lock:
                load.ports.add(self.client_address[1])
                load.in_flight += 1
                load.peak = max(load.peak, load.in_flight)
            time.sleep(0.01)
            number = self.path.split("vector%28", 1)[1].split("%29", 1)[0]
            body = SEVEN.replace('"7"', f'"{number}"').encode()
            with load.lock:
                load.in_flight -= 1
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with _server(Echo) as url:
        async with _provider(url, timeout_s=10, max_connections=3) as provider:
            results = await asyncio.gather(*(provider.run_query(f"vector({n})") for n in range(60)))
    assert [result.value for result in results] == [float(n) for n in range(60)]
    assert load.peak <= 3 and len(load.ports) <= 3  # at most max_connections, each kept alive and reused


async def test_a_reused_connection_the_server_closed_is_sent_again_once() -> None:
    class HangUpOnTheSecond(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        earlier = 0
        seen: list[int] = []  # noqa: RUF012  # shared on purpose: one list for every connection

        def do_GET(self) -> None:
            self.seen.append(self.client_address[1])
            if self.earlier == 0:
                body = SEVEN.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.close_connection = True  # the server closed the idle connection as our request arrived
            self.earlier += 1

        def log_message(self, format: str, *args: object) -> None:
            pass

    with _server(HangUpOnTheSecond) as url:
        async with _provider(url, timeout_s=5) as provider:
            assert (await provider.run_query("vector(7)")).value == 7
            assert (await provider.run_query("vector(7)")).value == 7  # no retry configured: a resend, not a retry
    assert len(HangUpOnTheSecond.seen) == 3 and len(set(HangUpOnTheSecond.seen)) == 2


async def test_the_factory_builds_the_async_provider_and_rejects_unknown_types() -> None:
    provider = create_async_provider(ProviderConfig(address="http://127.0.0.1:9", timeout_s=1))
    assert isinstance(provider, AsyncPrometheusProvider)
    await provider.aclose()
    with pytest.raises(UnknownProviderType, match="'datadog'"):
        create_async_provider(ProviderConfig(address="http://x:9090", type="datadog"))
