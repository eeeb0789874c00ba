"""``build_look`` (a coroutine) with a broken provider Secret: the metrics it serves fail, the tick does not crash."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
from fakekube import FakeKube
from http_recorder import Answer, Recorder, serve
from rollout_world import make_spec

from controller.kube.api import METRIC_TEMPLATES, SECRETS, KubeApi
from controller.operator.context import OperatorConfig, OperatorContext
from controller.operator.looks import build_look
from controller.rollout.judging import policy_from_spec

T0 = 1_700_000_000.0


def _context(secret: dict[str, Any] | None) -> OperatorContext:
    kube = FakeKube()
    kube.put(
        METRIC_TEMPLATES,
        "test",
        {
            "metadata": {"name": "errors"},
            "spec": {
                "provider": {"type": "prometheus", "address": "http://127.0.0.1:9", "secretRef": {"name": "prom"}},
                "query": 'sum(rate(errors{namespace="{{ namespace }}"}[1m]))',
            },
        },
    )
    if secret is not None:
        kube.put(SECRETS, "test", {"metadata": {"name": "prom"}, **secret})
    return OperatorContext(config=OperatorConfig(metrics_server="http://127.0.0.1:9"), api=cast(KubeApi, kube))


@pytest.mark.parametrize(
    ("secret", "error"),
    [
        (None, "Secret test/prom (MetricTemplate provider secretRef) not found"),
        ({"data": {"token": "not base64!"}}, "Secret test/prom (MetricTemplate provider secretRef): bad data"),
    ],
    ids=["missing-secret", "bad-base64"],
)
async def test_a_broken_provider_secret_fails_the_metrics_it_serves(secret: dict[str, Any] | None, error: str) -> None:
    spec = make_spec(
        {
            "interval": "1m",
            "threshold": 2,
            "stepWeight": 20,
            "metrics": [{"name": "errors", "templateRef": {"name": "errors"}, "thresholdRange": {"max": 1}}],
        }
    )
    ctx = _context(secret)
    try:
        look = await build_look(ctx, "podinfo", "test", spec, policy_from_spec(spec), (T0 - 60, T0))
    finally:
        await ctx.aclose()
    value = look.thresholds["errors"]
    assert value.error is not None and error in value.error


def test_an_alert_provider_secret_with_bad_base64_skips_that_provider_instead_of_crashing_the_tick() -> None:
    from controller.kube.api import ALERT_PROVIDERS
    from controller.operator.announce import _notifiers
    from controller.rollout.spec import Severity

    kube = FakeKube()
    kube.put(
        ALERT_PROVIDERS,
        "test",
        {"metadata": {"name": "on-call"}, "spec": {"type": "slack", "secretRef": {"name": "slack-url"}}},
    )
    kube.put(SECRETS, "test", {"metadata": {"name": "slack-url"}, "data": {"address": "%%% not base64 %%%"}})
    ctx = OperatorContext(config=OperatorConfig(), api=cast(KubeApi, kube))
    spec = make_spec(
        {
            "interval": "1m",
            "stepWeight": 20,
            "maxWeight": 60,
            "alerts": [{"name": "on-call", "severity": "info", "providerRef": {"name": "on-call"}}],
        }
    )
    assert _notifiers(ctx, "test", spec, Severity.ERROR) == []


# --- the look on the event loop ---------------------------------------------------------------------------------

PROM_ANSWER = '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.5"]}]}}'


class _Recording(OperatorContext):
    """Records what the look hands to ``ctx.blocking`` (the Kubernetes reads)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.blocked: list[str] = []

    async def blocking(self, function: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.blocked.append(function.__name__)
        return await super().blocking(function, *args, **kwargs)


@pytest.fixture
def prometheus() -> Iterator[Recorder]:
    yield from serve()


async def test_an_unreachable_template_provider_fails_only_its_metrics(prometheus: Recorder) -> None:
    prometheus.script("/api/v1/query", Answer(200, PROM_ANSWER))
    kube = FakeKube()
    kube.put(
        METRIC_TEMPLATES,
        "test",
        {
            "metadata": {"name": "remote"},
            "spec": {"provider": {"type": "prometheus", "address": "http://127.0.0.1:9"}, "query": "vector(1)"},
        },
    )
    # The recorder answers every query with one unlabelled value, as a per-Canary query gets it; batched looks
    # (a namespace's sum by workload, tests/test_batched_looks.py) need labelled answers, so they are off here.
    config = OperatorConfig(metrics_server=prometheus.base_url, batch_looks=False)
    ctx = _Recording(config=config, api=cast(KubeApi, kube))
    spec = make_spec(
        {
            "interval": "1m",
            "threshold": 2,
            "stepWeight": 20,
            "comparison": {"minRequests": 10, "errorRate": {"maxRelativeIncrease": 0.1}},
            "metrics": [
                {"name": "request-success-rate", "thresholdRange": {"min": 0}},
                {"name": "inline", "query": "vector(1)", "thresholdRange": {"max": 1}},
                {"name": "remote", "templateRef": {"name": "remote"}, "thresholdRange": {"max": 1}},
                {"name": "gone", "templateRef": {"name": "gone"}, "thresholdRange": {"max": 1}},
            ],
        }
    )
    try:
        look = await build_look(ctx, "podinfo", "test", spec, policy_from_spec(spec), (T0 - 60, T0))
        cached = ctx.provider(prometheus.base_url)
        assert cached is ctx.provider(prometheus.base_url)  # one cached client per provider
    finally:
        await ctx.aclose()
    assert look.thresholds["request-success-rate"].value == 0.5 and look.thresholds["inline"].value == 0.5
    assert look.counts_error is None  # the counts come from the default provider, which answers
    assert "unreachable" in (look.thresholds["remote"].error or "")
    assert look.thresholds["gone"].error == "MetricTemplate test/gone not found"
    # Kubernetes reads go through ctx.blocking; Prometheus is queried on the loop (4 queries + 2 per counter).
    assert sorted(ctx.blocked) == ["_credentials", "_credentials", "_metric_source", "_metric_source"]
    assert len(prometheus.requests_to("/api/v1/query")) == 4
    with pytest.raises(RuntimeError, match="closed"):  # aclose closed the providers' clients
        await cached.run_query("vector(1)")
