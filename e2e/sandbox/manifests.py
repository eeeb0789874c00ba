"""The objects the sandbox applies: the ``podinfo`` Deployment, its Canary and (optionally) a webhook AlertProvider.

The Canary is tuned for a short demo, not for production: 6 s between looks (``--quick``: 5 s), weights 10 → 20
→ … → 50 % then promotion (tuned with ``coalmine simulate`` at 40 rps: with 20 → 40 → 60 % and 3–5 s looks, 2–7 % of
releases failing 10 % of requests were promoted before the judge had enough requests; with five 6 s steps, none
of 1,000 were, and every healthy one was), the comparison judge at ``alpha`` 0.01 with a small ``minRequests``
(the canary arm only sees a few requests per second here), and Flagger's ``request-success-rate`` check at
≥ 80 % over a short window.
That check is loose on purpose: over a few seconds of canary traffic, one unlucky 5xx among a dozen requests of a
healthy release (rates extrapolated from few samples) reads as 92 %. The comparison judge is what catches the
faulty release; the threshold check only shows Flagger's checks still work.
With ``provider="gatewayapi"`` the Canary routes through an HTTPRoute (``spec.provider: gatewayapi:v1``) and names
``analysis.querySet: istio``: the sandbox's router exports Istio's series whichever object it routes by.
A release's behaviour is the backend's environment (``ERROR_RATE``, ``LATENCY_MS``, ``VERSION``), exactly as a pod
template's ``env`` would carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Object = dict[str, Any]
CANARY_API = "coalmine.dev/v1alpha1"
PROVIDERS = ("istio", "gatewayapi")  # what the sandbox can route by: a VirtualService or an HTTPRoute


@dataclass(frozen=True)
class Release:
    """One version of the app: its tag, how it behaves and which outcome the operator should reach."""

    version: str
    error_rate: float
    latency_ms: float = 50.0
    expect: str = "Succeeded"

    @property
    def image(self) -> str:
        return f"ghcr.io/stefanprodan/podinfo:{self.version}"


@dataclass(frozen=True)
class Timing:
    """The Canary's clock: seconds between looks and the threshold check's window."""

    interval_s: int = 5
    metric_interval_s: int = 15
    threshold: int = 2
    min_requests: int = 30


def deployment(namespace: str, name: str, release: Release) -> Object:
    """The target Deployment running ``release`` (its env is the backend's behaviour)."""
    labels = {"app": name}
    env = {"ERROR_RATE": f"{release.error_rate:g}", "LATENCY_MS": f"{release.latency_ms:g}", "VERSION": release.version}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "progressDeadlineSeconds": 60,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "podinfod",
                            "image": release.image,
                            "ports": [{"name": "http", "containerPort": 9898}],
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                        }
                    ]
                },
            },
        },
    }


def release_patch(release: Release) -> Object:
    """A strategic-merge-free way to release: replace the first container's image and env (a merge patch)."""
    pod_spec: Object = deployment("", "", release)["spec"]["template"]["spec"]
    return pod_spec


def canary(
    namespace: str, name: str, timing: Timing, *, alert_provider: str | None = None, provider: str = "istio"
) -> Object:
    """The Canary for ``name`` (see the module docstring for why each number is what it is)."""
    if provider not in PROVIDERS:
        raise ValueError(f"the sandbox routes by {' or '.join(PROVIDERS)}, not {provider!r}")
    analysis: Object = {
        "interval": f"{timing.interval_s}s",
        "threshold": timing.threshold,
        "stepWeight": 10,
        "maxWeight": 50,
        "comparison": {
            "alpha": 0.01,
            "minRequests": timing.min_requests,
            "errorRate": {"maxRelativeIncrease": 0.1},
            "latency": {"slowThresholdMs": 250, "maxRelativeIncrease": 0.2},
        },
        "metrics": [
            {
                "name": "request-success-rate",
                "interval": f"{timing.metric_interval_s}s",
                "thresholdRange": {"min": 80},
            }
        ],
    }
    if provider == "gatewayapi":
        analysis["querySet"] = "istio"
    if alert_provider is not None:
        analysis["alerts"] = [{"name": "recorder", "severity": "info", "providerRef": {"name": alert_provider}}]
    spec: Object = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "progressDeadlineSeconds": 120,
        "service": {"port": 9898},
        "analysis": analysis,
    }
    if provider == "gatewayapi":
        spec = {"provider": "gatewayapi:v1", **spec}
    return {
        "apiVersion": CANARY_API,
        "kind": "Canary",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def webhook_provider(namespace: str, name: str, url: str) -> Object:
    """An AlertProvider of type ``webhook`` (Coalmine's generic JSON body) posting to ``url``."""
    return {
        "apiVersion": CANARY_API,
        "kind": "AlertProvider",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": "webhook", "address": url},
    }
