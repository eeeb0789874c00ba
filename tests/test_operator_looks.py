"""``build_look`` with a broken provider Secret: the metrics it serves fail, the tick does not crash."""

from __future__ import annotations

from typing import Any, cast

import pytest
from fakekube import FakeKube
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
                "query": "sum(rate(errors[1m]))",
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
def test_a_broken_provider_secret_fails_the_metrics_it_serves(secret: dict[str, Any] | None, error: str) -> None:
    spec = make_spec(
        {
            "interval": "1m",
            "threshold": 2,
            "stepWeight": 20,
            "metrics": [{"name": "errors", "templateRef": {"name": "errors"}, "thresholdRange": {"max": 1}}],
        }
    )
    look = build_look(_context(secret), "podinfo", "test", spec, policy_from_spec(spec), (T0 - 60, T0))
    value = look.thresholds["errors"]
    assert value.error is not None and error in value.error


def test_an_alert_provider_secret_with_bad_base64_skips_that_provider_instead_of_crashing_the_tick() -> None:
    from controller.kube.api import ALERT_PROVIDERS
    from controller.notify.severity import Severity
    from controller.operator.announce import _notifiers

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
