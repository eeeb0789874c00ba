"""A team's credential stays that team's: never sent to a Canary's metricsServer, never used from another namespace
unless its owners share it (``coalmine.dev/share-credentials-with``).

The attack reproduced here: a Canary in namespace ``intruder`` points ``spec.metricsServer`` at a server it runs and
references team-b's MetricTemplate, whose ``secretRef`` holds team-b's Prometheus bearer token and whose address
came from the metricsServer fallback. The look used to send ``Authorization: Bearer <team-b's token>`` to the
intruder's server. The servers here are real HTTP servers on 127.0.0.1 that record every request.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any, cast

import pytest
from fakekube import FakeKube
from http_recorder import Answer, Recorder, serve
from rollout_world import make_spec

from controller.kube.api import ALERT_PROVIDERS, METRIC_TEMPLATES, SECRETS, KubeApi
from controller.notify.severity import Severity
from controller.operator.announce import _notifiers
from controller.operator.context import OperatorConfig, OperatorContext
from controller.operator.credentials import SHARE_ANNOTATION
from controller.operator.looks import build_look
from controller.rollout.judging import policy_from_spec
from controller.rollout.validation import validate_document

T0 = 1_700_000_000.0
TOKEN = "team-b-s3cret-token"
PROM_ANSWER = '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.5"]}]}}'


@pytest.fixture
def intruder_server() -> Iterator[Recorder]:
    yield from serve()


@pytest.fixture
def team_prometheus() -> Iterator[Recorder]:
    yield from serve()


def _world(template_provider: dict[str, Any], *, annotations: dict[str, str] | None = None) -> FakeKube:
    kube = FakeKube()
    kube.put(
        METRIC_TEMPLATES,
        "team-b",
        {
            "metadata": {"name": "errors", "annotations": annotations or {}},
            "spec": {
                "provider": {"type": "prometheus", "secretRef": {"name": "prom"}, **template_provider},
                "query": 'sum(rate(errors{namespace="{{ namespace }}"}[1m]))',
            },
        },
    )
    kube.put(
        SECRETS, "team-b", {"metadata": {"name": "prom"}, "data": {"token": base64.b64encode(TOKEN.encode()).decode()}}
    )
    return kube


def _look(kube: FakeKube, metrics_server: str, namespace: str = "intruder") -> Any:
    spec = make_spec(
        {
            "interval": "1m",
            "threshold": 2,
            "stepWeight": 20,
            "metrics": [
                {
                    "name": "errors",
                    "templateRef": {"name": "errors", "namespace": "team-b"},
                    "thresholdRange": {"max": 1},
                }
            ],
        },
        metricsServer=metrics_server,
    )

    async def look() -> Any:
        ctx = OperatorContext(config=OperatorConfig(metrics_server=metrics_server), api=cast(KubeApi, kube))
        try:
            return await build_look(ctx, "podinfo", namespace, spec, policy_from_spec(spec), (T0 - 60, T0))
        finally:
            await ctx.aclose()

    return asyncio.run(look())


def _tokens_seen(server: Recorder) -> list[str]:
    return [r.headers.get("Authorization", "") for r in server.received if TOKEN in r.headers.get("Authorization", "")]


def test_a_template_token_is_never_sent_to_the_canarys_metrics_server(intruder_server: Recorder) -> None:
    intruder_server.script("/api/v1/query", Answer(200, PROM_ANSWER))
    kube = _world({}, annotations={SHARE_ANNOTATION: "*"})  # shared on purpose: the address rule alone must hold
    look = _look(kube, intruder_server.base_url)
    assert _tokens_seen(intruder_server) == []
    error = look.thresholds["errors"].error
    assert error is not None and "spec.provider.address" in error and "metricsServer" in error


def test_a_template_with_credentials_is_not_usable_from_another_namespace_unless_shared(
    intruder_server: Recorder, team_prometheus: Recorder
) -> None:
    team_prometheus.script("/api/v1/query", Answer(200, PROM_ANSWER))
    kube = _world({"address": team_prometheus.base_url})
    look = _look(kube, intruder_server.base_url)
    assert team_prometheus.received == [] and intruder_server.received == []
    error = look.thresholds["errors"].error
    assert error is not None and "not shared with namespace 'intruder'" in error and SHARE_ANNOTATION in error


@pytest.mark.parametrize("grant", ["intruder", "ops, intruder", "*"])
def test_a_shared_template_sends_its_token_to_its_own_address_only(
    intruder_server: Recorder, team_prometheus: Recorder, grant: str
) -> None:
    team_prometheus.script("/api/v1/query", Answer(200, PROM_ANSWER))
    kube = _world({"address": team_prometheus.base_url}, annotations={SHARE_ANNOTATION: grant})
    look = _look(kube, intruder_server.base_url)
    assert look.thresholds["errors"].error is None and look.thresholds["errors"].value == 0.5
    assert _tokens_seen(team_prometheus) and _tokens_seen(intruder_server) == []


def test_the_templates_own_namespace_uses_it_without_a_grant(team_prometheus: Recorder) -> None:
    team_prometheus.script("/api/v1/query", Answer(200, PROM_ANSWER))
    kube = _world({"address": team_prometheus.base_url})
    look = _look(kube, "http://127.0.0.1:9", namespace="team-b")
    assert look.thresholds["errors"].value == 0.5 and _tokens_seen(team_prometheus)


def _alert_world(annotations: dict[str, str] | None) -> FakeKube:
    kube = FakeKube()
    kube.put(
        ALERT_PROVIDERS,
        "team-b",
        {
            "metadata": {"name": "on-call", "annotations": annotations or {}},
            "spec": {"type": "slack", "secretRef": {"name": "slack-url"}},
        },
    )
    url = base64.b64encode(b"https://hooks.slack.com/services/T0/B0/secret").decode()
    kube.put(SECRETS, "team-b", {"metadata": {"name": "slack-url"}, "data": {"address": url}})
    return kube


@pytest.mark.parametrize(("annotations", "usable"), [(None, False), ({SHARE_ANNOTATION: "intruder"}, True)])
def test_another_namespaces_alert_provider_with_a_secret_needs_a_grant(
    annotations: dict[str, str] | None, usable: bool
) -> None:
    ctx = OperatorContext(config=OperatorConfig(), api=cast(KubeApi, _alert_world(annotations)))
    spec = make_spec(
        {
            "interval": "1m",
            "stepWeight": 20,
            "maxWeight": 60,
            "alerts": [{"name": "b", "severity": "info", "providerRef": {"name": "on-call", "namespace": "team-b"}}],
        }
    )
    assert len(_notifiers(ctx, "intruder", spec, Severity.ERROR)) == (1 if usable else 0)


def test_validate_refuses_a_template_with_a_secret_and_no_address() -> None:
    document = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "MetricTemplate",
        "metadata": {"name": "errors", "namespace": "team-b"},
        "spec": {"provider": {"type": "prometheus", "secretRef": {"name": "prom"}}, "query": "sum(up)"},
    }
    problems = [str(p) for p in validate_document(document).problems]
    assert any("spec.provider.address" in p and "secretRef" in p for p in problems), problems
