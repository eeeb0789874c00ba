"""Webhook ``timeout`` and ``retries`` have maxima: a tick waits for its hooks, so an unbounded hook (found under
attack: ``timeout: 24h``, ``retries: 100000``) would hold a rollout — and an abort — as long as it liked."""

from __future__ import annotations

from typing import Any

import pytest

from controller.rollout.validation import validate_document


def canary(hook: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "shop", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop"},
            "service": {"port": 80},
            "analysis": {
                "interval": "30s",
                "stepWeight": 10,
                "webhooks": [{"name": "smoke", "url": "http://tester.test/", **hook}],
            },
        },
    }


@pytest.mark.parametrize(
    ("hook", "path"),
    [
        ({"timeout": "24h"}, "spec.analysis.webhooks[0].timeout"),
        ({"timeout": "16m"}, "spec.analysis.webhooks[0].timeout"),
        ({"retries": 100000}, "spec.analysis.webhooks[0].retries"),
    ],
)
def test_an_unbounded_webhook_is_refused_naming_the_field(hook: dict[str, Any], path: str) -> None:
    report = validate_document(canary(hook))
    assert path in [problem.path for problem in report.problems], report.problems


def test_the_limits_leave_flaggers_usual_hooks_alone() -> None:
    assert validate_document(canary({"timeout": "15m", "retries": 10})).valid
    assert validate_document(canary({"timeout": "30s", "retries": 3})).valid
