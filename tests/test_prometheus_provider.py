"""The Prometheus provider against a real Prometheus with recorded Istio series, and the query builders (unit)."""

from __future__ import annotations

import contextlib
import math
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from controller.providers import (
    AmbiguousResult,
    ProviderAuthError,
    ProviderConfig,
    ProviderConfigError,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnavailable,
    QueryRejected,
    UnknownProviderType,
    create_provider,
)
from controller.providers.looks import LookRequest, collect_look, tick_windows
from controller.providers.prometheus import PrometheusProvider, auth_from_credentials
from controller.providers.queries import (
    BucketError,
    BuiltinMetric,
    BuiltinName,
    TemplateError,
    TemplateModel,
    arm_models,
    builtin_query,
    prom_duration,
    render_template,
    slow_bucket,
)
from controller.providers.querysets import QUERY_SETS, Arms, QuerySetName, query_set

if TYPE_CHECKING:
    from prometheus_server import AuthProxy, RecordedPrometheus

pytest_plugins = ["prometheus_server"]

# Unit tests (no server) use these; the server tests read their dataset from the fixture.
NAMESPACE = "shop"
TARGET = "podinfo"

WINDOW_S = 300.0


@pytest.fixture(scope="module")
def prometheus(recorded_prometheus: RecordedPrometheus) -> PrometheusProvider:
    return PrometheusProvider(recorded_prometheus.url, timeout_s=5)


@pytest.fixture
def rec(recorded_prometheus: RecordedPrometheus) -> RecordedPrometheus:
    """Short name for the recorded dataset."""
    return recorded_prometheus


def _middle(recorded: RecordedPrometheus) -> float:
    """A look end inside the recorded hour, on the 15 s grid."""
    return recorded.start + 1800


# --- per-arm comparison counts -------------------------------------------------------------------------------


@pytest.mark.prometheus
def test_look_counts_requests_errors_and_slow_requests_per_arm(
    prometheus: PrometheusProvider, rec: RecordedPrometheus
) -> None:
    end = _middle(rec)
    look = collect_look(
        prometheus,
        LookRequest(rec.namespace, rec.target, end - WINDOW_S, end, counts=True, slow_threshold_ms=300),
    )
    assert look.counts_error is None
    # slowThresholdMs 300 is counted above the 500 ms bucket, the nearest boundary ≥ 300.
    for arm, counts in ((rec.canary, look.canary), (rec.primary, look.primary)):
        assert counts.requests == pytest.approx(arm.total_rate * WINDOW_S)
        assert counts.errors == pytest.approx(arm.error_rate * WINDOW_S)
        assert counts.slow == pytest.approx((arm.total_rate - arm.bucket_rate(500)) * WINDOW_S)
    # The decoys (reporter="source", another namespace) would add 50 errors/s each to the canary if not filtered.
    assert look.canary.errors == pytest.approx(60.0)


@pytest.mark.prometheus
def test_slow_bucket_matches_envoy_exponent_spelling(prometheus: PrometheusProvider, rec: RecordedPrometheus) -> None:
    end = _middle(rec)
    # 1,000,000 ms → the 1.8e+06 bucket, which Envoy labels le="1.8e+06": nothing recorded is that slow.
    request = LookRequest(rec.namespace, rec.target, end - 60, end, counts=True, slow_threshold_ms=1_000_000)
    look = collect_look(prometheus, request)
    assert look.counts_error is None
    assert look.canary.requests > 0 and look.canary.slow == 0 and look.primary.slow == 0


@pytest.mark.prometheus
def test_consecutive_looks_cover_disjoint_windows(prometheus: PrometheusProvider, rec: RecordedPrometheus) -> None:
    start = _middle(rec)
    windows = list(tick_windows(start, start + 95, 30))
    assert windows == [(start, start + 30), (start + 30, start + 60), (start + 60, start + 90)]
    looks = [collect_look(prometheus, LookRequest(rec.namespace, rec.target, s, e, counts=True)) for s, e in windows]
    whole = collect_look(prometheus, LookRequest(rec.namespace, rec.target, start, start + 90, counts=True))
    assert [look.canary.requests for look in looks] == pytest.approx([rec.canary.total_rate * 30] * 3)
    assert sum(look.canary.requests for look in looks) == pytest.approx(whole.canary.requests)


@pytest.mark.prometheus
def test_a_window_without_traffic_counts_zero_not_an_error(
    prometheus: PrometheusProvider, rec: RecordedPrometheus
) -> None:
    end = rec.end + 3 * 3600  # long after the recording: nothing in the window
    request = LookRequest(rec.namespace, rec.target, end - 60, end, counts=True, slow_threshold_ms=500)
    look = collect_look(prometheus, request)
    assert look.counts_error is None
    assert look.canary.requests == 0 and look.primary.requests == 0


@pytest.mark.prometheus
def test_missing_latency_histogram_is_a_counts_error_not_zero_slow_requests(
    prometheus: PrometheusProvider, rec: RecordedPrometheus
) -> None:
    end = _middle(rec)
    request = LookRequest(rec.namespace, rec.no_histogram_target, end - 60, end, counts=True, slow_threshold_ms=500)
    look = collect_look(prometheus, request)
    assert look.counts_error is not None
    assert "le=500" in look.counts_error and rec.no_histogram_target in look.counts_error
    assert look.canary.requests == 0  # all or nothing


# --- threshold metrics ------------------------------------------------------------------------------------------


def _canary_p99(rec: RecordedPrometheus) -> float:
    """histogram_quantile(0.99) by linear interpolation inside the bucket, as Prometheus computes it."""
    rank = 0.99 * rec.canary.total_rate
    lower, upper = 500.0, 1000.0
    below, at = rec.canary.bucket_rate(lower), rec.canary.bucket_rate(upper)
    assert below < rank <= at
    return lower + (upper - lower) * (rank - below) / (at - below)


@pytest.mark.prometheus
def test_builtin_success_rate_and_p99_for_the_canary(prometheus: PrometheusProvider, rec: RecordedPrometheus) -> None:
    end = _middle(rec)
    thresholds = {
        "request-success-rate": BuiltinMetric(BuiltinName.REQUEST_SUCCESS_RATE),
        "request-duration": BuiltinMetric(BuiltinName.REQUEST_DURATION, interval_s=120),
    }
    look = collect_look(prometheus, LookRequest(rec.namespace, rec.target, end - 60, end, thresholds=thresholds))
    expected_rate = 100 * rec.canary.ok_rate / rec.canary.total_rate
    assert look.thresholds["request-success-rate"].value == pytest.approx(expected_rate)
    assert look.thresholds["request-duration"].value == pytest.approx(_canary_p99(rec))


@pytest.mark.prometheus
def test_the_envoy_query_set_counts_the_same_arms_from_upstream_cluster_stats(
    prometheus: PrometheusProvider, rec: RecordedPrometheus
) -> None:
    """The ``envoy`` set (Contour's ``<namespace>_<service>_<port>`` clusters) reads what the Istio set reads;
    a service whose name merely starts like ours, and our name in another namespace, are not counted."""
    end = _middle(rec)
    request = LookRequest(
        rec.namespace,
        rec.target,
        end - WINDOW_S,
        end,
        counts=True,
        slow_threshold_ms=300,
        query_set=QuerySetName.ENVOY,
        service=rec.target,
    )
    look = collect_look(prometheus, request)
    assert look.counts_error is None
    for arm, counts in ((rec.canary, look.canary), (rec.primary, look.primary)):
        assert counts.requests == pytest.approx(arm.total_rate * WINDOW_S)
        assert counts.errors == pytest.approx(arm.error_rate * WINDOW_S)
        assert counts.slow == pytest.approx((arm.total_rate - arm.bucket_rate(500)) * WINDOW_S)
    thresholds = {
        "request-success-rate": BuiltinMetric(BuiltinName.REQUEST_SUCCESS_RATE),
        "request-duration": BuiltinMetric(BuiltinName.REQUEST_DURATION, interval_s=120),
    }
    envoy = collect_look(
        prometheus,
        LookRequest(rec.namespace, rec.target, end - 60, end, thresholds=thresholds, query_set=QuerySetName.ENVOY),
    )
    assert envoy.thresholds["request-success-rate"].value == pytest.approx(
        100 * rec.canary.ok_rate / rec.canary.total_rate
    )
    assert envoy.thresholds["request-duration"].value == pytest.approx(_canary_p99(rec))


def test_the_query_sets_select_arms_by_their_own_labels() -> None:
    arms = Arms("shop", "podinfo", "web")
    envoy, istio = QUERY_SETS[QuerySetName.ENVOY], QUERY_SETS[QuerySetName.ISTIO]
    assert envoy.arm({"envoy_cluster_name": "shop_web-canary_80"}, arms) == "canary"
    assert envoy.arm({"envoy_cluster_name": "shop_web-primary_80"}, arms) == "primary"
    assert envoy.arm({"envoy_cluster_name": "shop_web-canary_"}, arms) is None
    assert envoy.arm({"envoy_cluster_name": "shop_webx-canary_80"}, arms) is None
    assert istio.arm({"destination_workload": "podinfo-primary"}, arms) == "primary"
    assert envoy.is_server_error({"envoy_response_code": "503"})
    assert not istio.is_server_error({"envoy_response_code": "503"})
    with pytest.raises(ValueError, match="unknown query set 'linkerd'; known: istio, envoy"):
        query_set("linkerd")


@pytest.mark.prometheus
def test_no_data_for_an_empty_result_and_for_nan(prometheus: PrometheusProvider, rec: RecordedPrometheus) -> None:
    end = _middle(rec)
    missing = prometheus.run_query(builtin_query("request-success-rate", rec.namespace, "nobody"), at=end)
    assert missing.no_data and missing.no_data_reason == "empty result"
    idle = prometheus.run_query(builtin_query("request-success-rate", rec.namespace, rec.idle_target), at=end)
    assert idle.no_data and idle.no_data_reason == "NaN"  # 0 requests / 0 requests
    thresholds = {"sr": BuiltinMetric(BuiltinName.REQUEST_SUCCESS_RATE)}
    look = collect_look(prometheus, LookRequest(rec.namespace, rec.idle_target, end - 60, end, thresholds=thresholds))
    assert look.thresholds["sr"].value is None and look.thresholds["sr"].error is None


@pytest.mark.prometheus
def test_one_bad_query_does_not_hide_the_others(prometheus: PrometheusProvider, rec: RecordedPrometheus) -> None:
    end = _middle(rec)
    thresholds = {
        "broken": "sum(rate(istio_requests_total[1m]",
        "range": "istio_requests_total[1m]",
        "fine": "vector(42)",
        "scalar": "scalar(vector(3))",
    }
    look = collect_look(prometheus, LookRequest(rec.namespace, rec.target, end - 60, end, thresholds=thresholds))
    assert look.thresholds["fine"].value == 42
    assert look.thresholds["scalar"].value == 3
    assert "range vector" in (look.thresholds["range"].error or "")
    error = look.thresholds["broken"].error
    assert error is not None and "rejected the query" in error and "sum(rate(istio_requests_total[1m]" in error


@pytest.mark.prometheus
def test_compared_custom_metric_is_rendered_and_read_once_per_arm(
    prometheus: PrometheusProvider, rec: RecordedPrometheus
) -> None:
    template = (
        'sum(rate(istio_requests_total{reporter="destination", destination_workload_namespace="{{ namespace }}", '
        'destination_workload="{{ target }}", response_code="{{ variables.code }}"}[{{ interval }}]))'
    )
    model = TemplateModel("podinfo", rec.namespace, rec.target, "podinfo", interval="1m", variables={"code": "200"})
    canary_model, primary_model = arm_models(model)
    end = _middle(rec)
    compared = {"ok-rps": (render_template(template, canary_model), render_template(template, primary_model))}
    look = collect_look(prometheus, LookRequest(rec.namespace, rec.target, end - 60, end, compared=compared))
    values = look.compared["ok-rps"]
    assert values.error is None
    assert values.canary == pytest.approx(rec.canary.ok_rate)
    assert values.primary == pytest.approx(rec.primary.ok_rate)


# --- errors -----------------------------------------------------------------------------------------------------


@pytest.mark.prometheus
def test_several_series_where_one_is_expected_is_an_error_naming_the_query(
    prometheus: PrometheusProvider, rec: RecordedPrometheus
) -> None:
    query = f'istio_requests_total{{destination_workload="{rec.target}"}}'
    with pytest.raises(AmbiguousResult, match="expected one series") as caught:
        prometheus.run_query(query, at=_middle(rec))
    assert caught.value.query == query and "istio_requests_total" in str(caught.value)
    with pytest.raises(AmbiguousResult, match="destination_workload"):
        prometheus.run_vector("sum(istio_requests_total)", "destination_workload", at=_middle(rec))


@pytest.mark.prometheus
def test_bad_query_raises_query_rejected_with_prometheus_message(prometheus: PrometheusProvider) -> None:
    with pytest.raises(QueryRejected, match="parse error") as caught:
        prometheus.run_query("rate(istio_requests_total)")
    assert caught.value.query == "rate(istio_requests_total)"


def _credentials(proxy: AuthProxy, kind: str) -> dict[str, str]:
    return {
        "bearer": {"token": proxy.token},
        "basic": {"username": proxy.username, "password": proxy.password},
        "none": {},
        "bad-token": {"token": "wrong"},
        "bad-password": {"username": proxy.username, "password": "wrong"},
    }[kind]


@pytest.mark.prometheus
@pytest.mark.parametrize("kind", ["bearer", "basic"])
def test_auth_proxy_accepts_the_right_credentials(auth_proxy: AuthProxy, kind: str) -> None:
    config = ProviderConfig(address=auth_proxy.url, credentials=_credentials(auth_proxy, kind), timeout_s=5)
    provider = create_provider(config)
    assert provider.is_online()
    assert provider.run_query("vector(7)").value == 7


@pytest.mark.prometheus
@pytest.mark.parametrize("kind", ["none", "bad-token", "bad-password"])
def test_bad_auth_is_an_auth_error(auth_proxy: AuthProxy, kind: str) -> None:
    provider = PrometheusProvider(auth_proxy.url, credentials=_credentials(auth_proxy, kind), timeout_s=5)
    with pytest.raises(ProviderAuthError, match="HTTP 401") as caught:
        provider.run_query("vector(1)")
    assert caught.value.query == "vector(1)"
    assert not provider.is_online()


def test_unreachable_server_is_unavailable_quickly(unreachable_address: str) -> None:
    provider = PrometheusProvider(unreachable_address, timeout_s=2)
    with pytest.raises(ProviderUnavailable, match="unreachable") as caught:
        provider.run_query("vector(1)")
    assert caught.value.query == "vector(1)"
    assert not provider.is_online()


def test_a_server_that_never_answers_times_out(silent_server: str) -> None:
    provider = PrometheusProvider(silent_server, timeout_s=0.3)
    with pytest.raises(ProviderTimeout, match=r"within 0\.3 s"):
        provider.run_query("vector(1)")


def test_unreachable_server_lands_in_the_look_for_every_metric(unreachable_address: str) -> None:
    provider = PrometheusProvider(unreachable_address, timeout_s=2)
    request = LookRequest(
        NAMESPACE, TARGET, 0, 60, thresholds={"x": "vector(1)"}, compared={"y": ("a", "b")}, counts=True
    )
    look = collect_look(provider, request)
    assert look.thresholds["x"].error and "unreachable" in look.thresholds["x"].error
    assert look.compared["y"].error and "canary" in look.compared["y"].error
    assert look.counts_error and "unreachable" in look.counts_error


# --- configuration (unit) ---------------------------------------------------------------------------------------


def test_unknown_provider_type_is_rejected_not_defaulted() -> None:
    with pytest.raises(UnknownProviderType, match=r"'datadog'.*prometheus"):
        create_provider(ProviderConfig(address="http://x:9090", type="datadog"))


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        ({"token": "t", "username": "u"}, "both"),
        ({"username": "u"}, "both 'username' and 'password'"),
        ({"token": " "}, "empty"),
        ({"user": "u", "pass": "p"}, "it has: pass, user"),
    ],
)
def test_incomplete_or_ambiguous_credentials_are_config_errors(credentials: dict[str, str], message: str) -> None:
    with pytest.raises(ProviderConfigError, match=message):
        auth_from_credentials(credentials)


def test_credentials_become_a_bearer_header_or_basic_auth() -> None:
    assert auth_from_credentials({"token": "abc\n"}) == ({"Authorization": "Bearer abc"}, None)
    assert auth_from_credentials({"username": "u", "password": "p"}) == ({}, ("u", "p"))
    assert auth_from_credentials({}) == ({}, None)


def test_address_must_be_http() -> None:
    with pytest.raises(ProviderConfigError, match="http://"):
        PrometheusProvider("prometheus:9090")


# --- query rendering (unit) -------------------------------------------------------------------------------------


def test_template_renders_flagger_model_and_variables() -> None:
    model = TemplateModel("web", "shop", "web", "web-svc", interval="2m", variables={"code": "503"})
    query = "{{name}}/{{ namespace }}/{{ target }}/{{ service }}[{{ interval }}] code={{ variables.code }}"
    assert render_template(query, model) == "web/shop/web/web-svc[2m] code=503"


def test_template_missing_variable_is_an_error_naming_it() -> None:
    model = TemplateModel("web", "shop", "web", "web", variables={"code": "503"})
    with pytest.raises(TemplateError, match="'direction' is not set in templateVariables \\(set: code\\)"):
        render_template('x{d="{{ variables.direction }}"}', model)


@pytest.mark.parametrize("query", ["{{ .target }}", "{{ target | upper }}", "x{{ target"])
def test_template_rejects_unsupported_expressions(query: str) -> None:
    with pytest.raises(TemplateError):
        render_template(query, TemplateModel("web", "shop", "web", "web"))


def test_arm_models_point_at_the_canary_and_primary_workloads() -> None:
    canary, primary = arm_models(TemplateModel("web", "shop", "web", "web-svc"))
    assert (canary.target, canary.service) == ("web", "web-svc-canary")
    assert (primary.target, primary.service) == ("web-primary", "web-svc-primary")


def test_builtin_queries_match_flagger_semantics() -> None:
    success = builtin_query("request-success-rate", "shop", "web.v2", 60)
    assert success.count('reporter="destination"') == 2
    assert 'response_code!~"5.*"' in success and success.endswith("* 100")
    assert 'destination_workload=~"web\\\\.v2"' in success  # regex-escaped, as a PromQL string literal
    assert "[1m]" in success
    duration = builtin_query("request-duration", "shop", "web", 30)
    assert duration.startswith("histogram_quantile(0.99,") and "by (le)" in duration and "[30s]" in duration
    with pytest.raises(ValueError, match="request-count"):
        builtin_query("request-count", "shop", "web")


@pytest.mark.parametrize(
    ("seconds", "text"), [(60, "1m"), (90, "1m30s"), (3600, "1h"), (3725, "1h2m5s"), (0.25, "250ms"), (15, "15s")]
)
def test_prom_duration(seconds: float, text: str) -> None:
    assert prom_duration(seconds) == text


def test_prom_duration_rejects_empty_windows() -> None:
    with pytest.raises(ValueError, match="positive"):
        prom_duration(0)


def test_slow_threshold_uses_the_nearest_bucket_at_or_above() -> None:
    assert slow_bucket(300) == 500
    assert slow_bucket(500) == 500
    assert slow_bucket(0.1) == 0.5
    with pytest.raises(BucketError, match="above the largest histogram bucket"):
        slow_bucket(4_000_000)
    with pytest.raises(BucketError, match="positive"):
        slow_bucket(math.nan)


def test_look_request_rejects_inverted_windows_and_slow_without_counts() -> None:
    with pytest.raises(ValueError, match="end after it starts"):
        LookRequest(NAMESPACE, TARGET, 10, 10)
    with pytest.raises(ValueError, match="counts=True"):
        LookRequest(NAMESPACE, TARGET, 0, 10, slow_threshold_ms=500)


# --- retries (a scripted server, no Prometheus) -----------------------------------------------------------------


def _answer_json(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class _FlakyHandler(BaseHTTPRequestHandler):
    """Answers 503 to the first ``failures`` requests, then a one-sample vector."""

    failures = 1
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if len(self.seen) <= self.failures:
            status, body = 503, b'{"status":"error","error":"overloaded"}'
        else:
            status, body = (
                200,
                b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"5"]}]}}',
            )
        _answer_json(self, status, body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def flaky_server() -> Iterator[str]:
    _FlakyHandler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_503_fails_the_query_without_retries_and_passes_with_one(flaky_server: str) -> None:
    with pytest.raises(ProviderResponseError, match="HTTP 503: overloaded"):
        PrometheusProvider(flaky_server, timeout_s=2).run_query("up")
    _FlakyHandler.seen.clear()
    assert PrometheusProvider(flaky_server, timeout_s=2, retries=1).run_query("up").value == 5
    assert len(_FlakyHandler.seen) == 2


def test_the_proxy_from_the_environment_is_used_though_read_only_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """``HTTP_PROXY`` is honoured as ``requests`` would, fixed when the provider is built (not re-read per query)."""
    seen: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)  # a proxied request names the absolute URL
            body = b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"7"]}]}}'
            _answer_json(self, 200, body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{server.server_address[1]}")
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        with PrometheusProvider("http://prometheus.example:9090", timeout_s=5) as provider:
            for name in ("HTTP_PROXY", "http_proxy"):  # changing the environment later changes nothing
                monkeypatch.delenv(name)
            assert provider.run_query("vector(7)").value == 7.0
            assert provider.run_query("vector(7)").value == 7.0
        assert len(seen) == 2 and all(path.startswith("http://prometheus.example:9090/api/v1/query") for path in seen)
    finally:
        server.shutdown()
        server.server_close()


# --- the HTTP transport (scripted servers, no Prometheus) ------------------------------------------------------

_SEVEN = b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"7"]}]}}'
_TRANSPORT_VARIABLES = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
)


@dataclass(frozen=True)
class _Seen:
    """One request a scripted server received: the client's port (one per connection), path and headers."""

    port: int
    path: str
    headers: dict[str, str]


@dataclass
class _Scripted:
    url: str
    seen: list[_Seen] = field(default_factory=list)

    @property
    def connections(self) -> int:
        return len({request.port for request in self.seen})


Answer = Callable[[BaseHTTPRequestHandler, int], None]
"""Writes the answer to one request; the int counts the requests seen before it on the same connection."""


def _answer_seven(handler: BaseHTTPRequestHandler, earlier: int) -> None:
    _answer_json(handler, 200, _SEVEN)


@contextmanager
def _scripted(answer: Answer = _answer_seven, *, tls: ssl.SSLContext | None = None) -> Iterator[_Scripted]:
    """An HTTP/1.1 server with keep-alive that records every request and answers with ``answer``."""
    scripted = _Scripted(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        earlier = 0

        def do_GET(self) -> None:
            scripted.seen.append(_Seen(self.client_address[1], self.path, dict(self.headers)))
            answer(self, self.earlier)
            self.earlier += 1

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    scripted.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    try:
        yield scripted
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy and no CA bundle from the machine's environment: each test sets what it needs."""
    for name in _TRANSPORT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.usefixtures("clean_environment")
def test_queries_reuse_one_kept_alive_connection_and_send_the_credentials() -> None:
    with _scripted() as server, PrometheusProvider(server.url, credentials={"token": "t0k"}, timeout_s=5) as p:
        assert [p.run_query("vector(7)").value for _ in range(5)] == [7.0] * 5
    assert server.connections == 1
    assert all(request.headers["Authorization"] == "Bearer t0k" for request in server.seen)
    assert server.seen[0].path.startswith("/api/v1/query?query=vector%287%29&timeout=5s")
    with _scripted() as server, PrometheusProvider(server.url, credentials={"username": "u", "password": "p"}) as p:
        assert p.run_query("vector(7)").value == 7.0
    assert server.seen[0].headers["Authorization"] == "Basic dTpw"


@pytest.mark.usefixtures("clean_environment")
def test_a_connection_the_server_dropped_while_idle_is_replaced_without_an_error() -> None:
    def answer_then_hang_up(handler: BaseHTTPRequestHandler, earlier: int) -> None:
        _answer_json(handler, 200, _SEVEN)  # keep-alive promised, then the server closes anyway
        handler.close_connection = True

    with _scripted(answer_then_hang_up) as server, PrometheusProvider(server.url, timeout_s=5) as provider:
        for _ in range(3):
            assert provider.run_query("vector(7)").value == 7.0
            time.sleep(0.05)  # let the close arrive: it is noticed before the connection is reused
    assert server.connections == 3


@pytest.mark.usefixtures("clean_environment")
def test_a_request_the_server_hung_up_on_is_sent_again_only_on_a_reused_connection() -> None:
    def hang_up_on_the_second(handler: BaseHTTPRequestHandler, earlier: int) -> None:
        if earlier == 0:
            _answer_json(handler, 200, _SEVEN)
        else:  # the server closed the idle connection just as our next request arrived
            handler.close_connection = True

    with _scripted(hang_up_on_the_second) as server, PrometheusProvider(server.url, timeout_s=5) as provider:
        assert provider.run_query("vector(7)").value == 7.0
        assert provider.run_query("vector(7)").value == 7.0  # sent again on a new connection, no retry used
    assert len(server.seen) == 3 and server.connections == 2

    def always_hang_up(handler: BaseHTTPRequestHandler, earlier: int) -> None:
        handler.close_connection = True

    with (
        _scripted(always_hang_up) as server,
        PrometheusProvider(server.url, timeout_s=5) as provider,
        pytest.raises(ProviderUnavailable, match="unreachable"),
    ):
        provider.run_query("vector(7)")
    assert len(server.seen) == 1  # a new connection that fails is an error, not sent again


@pytest.mark.usefixtures("clean_environment")
def test_a_fractional_timeout_is_applied_as_given() -> None:
    def slowly(handler: BaseHTTPRequestHandler, earlier: int) -> None:
        time.sleep(0.4)
        _answer_json(handler, 200, _SEVEN)

    with _scripted(slowly) as server:
        with PrometheusProvider(server.url, timeout_s=0.7) as patient:  # would fail if truncated to 0 s
            assert patient.run_query("vector(7)").value == 7.0
        with PrometheusProvider(server.url, timeout_s=0.2) as hasty:  # would wait for the answer if rounded up
            start = time.monotonic()
            with pytest.raises(ProviderTimeout, match=r"within 0\.2 s"):
                hasty.run_query("vector(7)")
            assert time.monotonic() - start >= 0.18  # and not given up at once (rounded down)
    assert server.seen[0].path.endswith("timeout=700ms")


@pytest.mark.usefixtures("clean_environment")
def test_many_threads_share_one_provider_without_mixing_answers() -> None:
    def echo(handler: BaseHTTPRequestHandler, earlier: int) -> None:
        number = parse_qs(urlsplit(handler.path).query)["query"][0].removeprefix("vector(").removesuffix(")")
        body = '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"%s"]}]}}'
        _answer_json(handler, 200, (body % number).encode())

    with (
        _scripted(echo) as server,
        PrometheusProvider(server.url, timeout_s=5, max_connections=4) as provider,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):
        values = list(pool.map(lambda n: provider.run_query(f"vector({n})").value, range(200)))
    assert values == [float(n) for n in range(200)]
    assert server.connections < 50  # connections were kept alive and reused, not opened per query


@pytest.mark.usefixtures("clean_environment")
def test_redirects_are_not_followed_so_credentials_never_leave_the_address() -> None:
    """Changed by design (httpx rewrite): a redirect used to be followed (the token dropped on another host); now
    no redirect is followed at all, so the token only ever goes to the configured address, and the error says
    where the server points."""
    with _scripted() as target:

        def redirect(handler: BaseHTTPRequestHandler, earlier: int) -> None:
            handler.send_response(307)
            handler.send_header("Location", f"{target.url}/elsewhere{handler.path}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        with (
            _scripted(redirect) as origin,
            PrometheusProvider(origin.url, credentials={"token": "t0k"}, timeout_s=5) as provider,
            pytest.raises(ProviderResponseError, match=r"HTTP 307 \(a redirect to http://127\.0\.0\.1:\d+/elsewhere/"),
        ):
            provider.run_query("vector(7)")
    assert len(origin.seen) == 1 and origin.seen[0].headers.get("Authorization") == "Bearer t0k"
    assert not target.seen  # not followed: the other server never sees the request, nor the token


@pytest.mark.usefixtures("clean_environment")
def test_a_token_that_cannot_be_a_header_fails_the_query_with_a_provider_error() -> None:
    with (
        _scripted() as server,
        PrometheusProvider(server.url, credentials={"token": "abc\ndef"}, timeout_s=5) as provider,
        pytest.raises(ProviderUnavailable, match="header"),
    ):
        provider.run_query("vector(7)")
    assert not server.seen


@pytest.mark.usefixtures("clean_environment")
def test_an_answer_that_is_not_json_is_a_response_error() -> None:
    with (
        _scripted(lambda handler, _: _answer_json(handler, 200, b"<html>login</html>")) as server,
        PrometheusProvider(server.url, timeout_s=5) as provider,
        pytest.raises(ProviderResponseError, match="invalid JSON"),
    ):
        provider.run_query("vector(7)")


def test_no_proxy_bypasses_the_proxy_and_proxy_credentials_are_sent(clean_environment: pytest.MonkeyPatch) -> None:
    with _scripted() as proxy, _scripted() as server:
        host = proxy.url.removeprefix("http://")
        clean_environment.setenv("HTTP_PROXY", f"http://ops:s3cret@{host}")
        clean_environment.setenv("NO_PROXY", "127.0.0.1")
        with PrometheusProvider(server.url, timeout_s=5) as direct:
            assert direct.run_query("vector(7)").value == 7.0
        assert len(server.seen) == 1 and not proxy.seen
        with PrometheusProvider("http://prometheus.example:9090", timeout_s=5) as proxied:
            assert proxied.run_query("vector(7)").value == 7.0
        assert proxy.seen[0].path.startswith("http://prometheus.example:9090/api/v1/query?")
        assert proxy.seen[0].headers["Proxy-Authorization"] == "Basic b3BzOnMzY3JldA=="


def test_a_socks_proxy_or_an_unreadable_ca_bundle_is_a_configuration_error(
    clean_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_environment.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(ProviderConfigError, match=r"cannot read the CA bundle .*missing\.pem"):
        PrometheusProvider("https://prometheus.example:9090")
    clean_environment.delenv("REQUESTS_CA_BUNDLE")
    clean_environment.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(ProviderConfigError, match="SOCKS"):
        PrometheusProvider("https://prometheus.example:9090")


# --- TLS --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pki:
    """A test CA and a server certificate it signed for the name ``localhost`` only."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> _Pki:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    root = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=root, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Coalmine test CA")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (root / "san.cnf").write_text("subjectAltName=DNS:localhost\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "san.cnf",
    )  # fmt: skip
    return _Pki(ca=root / "ca.pem", cert=root / "server.pem", key=root / "server.key")


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"])
def test_tls_trusts_the_ca_bundle_from_the_environment(
    clean_environment: pytest.MonkeyPatch, pki: _Pki, variable: str
) -> None:
    clean_environment.setenv(variable, str(pki.ca))
    with _scripted(tls=pki.server_context()) as server:
        address = server.url.replace("127.0.0.1", "localhost")
        with PrometheusProvider(address, timeout_s=5) as provider:
            assert [provider.run_query("vector(7)").value for _ in range(3)] == [7.0] * 3
    assert server.connections == 1  # one handshake, then keep-alive


def test_tls_refuses_an_unknown_ca_or_a_wrong_name_unless_told_to_skip_verification(
    clean_environment: pytest.MonkeyPatch, pki: _Pki
) -> None:
    with _scripted(tls=pki.server_context()) as server:
        localhost = server.url.replace("127.0.0.1", "localhost")
        with (  # certifi's CAs do not include ours
            PrometheusProvider(localhost, timeout_s=5) as untrusted,
            pytest.raises(ProviderUnavailable, match="certificate verify failed"),
        ):
            untrusted.run_query("vector(7)")
        clean_environment.setenv("REQUESTS_CA_BUNDLE", str(pki.ca))
        with (  # the certificate names localhost only
            PrometheusProvider(server.url, timeout_s=5) as wrong_name,
            pytest.raises(ProviderUnavailable, match="certificate verify failed"),
        ):
            wrong_name.run_query("vector(7)")
        with PrometheusProvider(server.url, timeout_s=5, insecure_skip_verify=True) as insecure:
            assert insecure.run_query("vector(7)").value == 7.0
    assert len(server.seen) == 1


@contextmanager
def _connect_proxy() -> Iterator[tuple[str, list[str]]]:
    """An HTTP proxy that only tunnels (``CONNECT``); yields its URL and the request lines it received."""
    lines: list[str] = []

    class Tunnel(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline().decode("latin-1").strip()
            lines.append(line)
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            host, _, port = line.split()[1].rpartition(":")
            with socket.create_connection((host, int(port)), timeout=5) as upstream:
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                pump = threading.Thread(target=_relay, args=(upstream, self.connection), daemon=True)
                pump.start()
                _relay(self.connection, upstream)
                pump.join(timeout=5)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Tunnel)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", lines
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _relay(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def test_https_through_a_proxy_is_tunnelled_and_still_verified(
    clean_environment: pytest.MonkeyPatch, pki: _Pki
) -> None:
    clean_environment.setenv("REQUESTS_CA_BUNDLE", str(pki.ca))
    with _scripted(tls=pki.server_context()) as server, _connect_proxy() as (proxy, lines):
        clean_environment.setenv("HTTPS_PROXY", proxy)
        address = server.url.replace("127.0.0.1", "localhost")
        with PrometheusProvider(address, timeout_s=5) as provider:
            assert [provider.run_query("vector(7)").value for _ in range(2)] == [7.0, 7.0]
        port = address.rsplit(":", 1)[1]
        assert len(lines) == 1 and lines[0].startswith(f"CONNECT localhost:{port} ")  # one tunnel, kept alive
        with (  # through the tunnel, the certificate still has to name the address
            PrometheusProvider(server.url, timeout_s=5) as wrong_name,
            pytest.raises(ProviderUnavailable, match="certificate verify failed"),
        ):
            wrong_name.run_query("vector(7)")
    assert len(server.seen) == 2
