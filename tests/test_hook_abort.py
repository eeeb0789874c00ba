"""A retrying webhook never holds traffic: `kubectl coalmine abort` wins at once, and retries stop at the deadline.

Real operator (kopf + our handlers) over HTTP against the emulated API, a real webhook receiver on 127.0.0.1, and
the real plugin CLI writing the abort request. Before, the tick waited for every retry of the hook (here up to
11 attempts of 60 s), so the abort — and the rollback — came only after them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
from emulator import CoalmineEmulator, operator_settings, running_operator, write_kubeconfig
from http_recorder import Answer, Recorder, serve
from rollout_world import make_spec
from typer.testing import CliRunner

from controller.cli.plugin import app as plugin
from controller.operator.context import OperatorConfig
from controller.operator.hookrun import hook_budget
from controller.operator.runtime import build_context, build_registry, configure_settings
from controller.rollout.spec import HookType
from controller.rollout.status import CanaryStatus

NS = "default"
CANARIES = "coalmine.dev/v1alpha1/canaries"
DEPLOYMENTS = "apps/v1/deployments"


@pytest.fixture
def receiver() -> Iterator[Recorder]:
    yield from serve()


def deployment(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {
                "metadata": {"labels": {"app": "podinfo"}},
                "spec": {"containers": [{"name": "podinfo", "image": image}]},
            },
        },
    }


def canary(hook: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "1s", "threshold": 1, "stepWeight": 50, "maxWeight": 50, "webhooks": [hook]},
            **spec,
        },
    }


def status_of(emulator: CoalmineEmulator) -> dict[str, Any]:
    obj = emulator.read_object(CANARIES, NS, "podinfo")
    return {} if obj is None else obj.get("status") or {}


async def wait_for(emulator: CoalmineEmulator, predicate: Any, what: str, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not predicate(status_of(emulator)):
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"not {what} within {timeout:g} s: status {status_of(emulator)}")


async def _start_rollout(emulator: CoalmineEmulator, body: dict[str, Any]) -> Any:
    config = OperatorConfig(tick_seconds=0.2)
    settings = operator_settings()
    configure_settings(settings)
    emulator.create_object(DEPLOYMENTS, deployment("podinfo:1"), NS)
    emulator.create_object(CANARIES, body, NS)
    ctx = build_context(config, kubernetes.client.Configuration(host=str(emulator.url).rstrip("/")))
    return running_operator(emulator, registry=build_registry(config), settings=settings, memo={"ctx": ctx})


def _release(emulator: CoalmineEmulator) -> None:
    emulator.patch_object(
        DEPLOYMENTS,
        NS,
        "podinfo",
        {"spec": {"template": {"spec": {"containers": [{"name": "podinfo", "image": "podinfo:2"}]}}}},
    )


async def test_abort_wins_over_a_webhook_that_is_still_retrying(
    emulator: CoalmineEmulator, receiver: Recorder, tmp_path: Path
) -> None:
    url = receiver.script("/load-test", Answer(200, delay_s=600))  # never answers within its 60 s timeout
    hook = {"name": "load-test", "type": "rollout", "url": url, "timeout": "60s", "retries": 10}
    running = await _start_rollout(emulator, canary(hook))
    async with running:
        await wait_for(emulator, lambda s: s.get("phase") == "Initialized", "initialized", 20)
        _release(emulator)
        await wait_for(emulator, lambda s: s.get("canaryWeight") == 50, "at weight 50", 20)
        async with asyncio.timeout(20):
            while not receiver.requests_to("/load-test"):
                await asyncio.sleep(0.1)
        kubeconfig = write_kubeconfig(str(emulator.url), tmp_path / "kubeconfig")
        asked = time.monotonic()
        result = await asyncio.to_thread(
            CliRunner().invoke,
            plugin,
            ["abort", "podinfo", "-n", NS, "--kubeconfig", str(kubeconfig)],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        await wait_for(emulator, lambda s: s.get("phase") == "Failed", "rolled back", 10)
        assert time.monotonic() - asked < 10
        assert status_of(emulator).get("canaryWeight") == 0
    assert len(receiver.requests_to("/load-test")) == 1  # the one attempt in flight; no retry after the abort
    events = [e.get("reason") for e in emulator.list_objects("events.k8s.io/v1/events", NS)]
    assert "Aborted" in events or "RolledBack" in events, events


async def test_a_retrying_webhook_is_stopped_at_the_progress_deadline(
    emulator: CoalmineEmulator, receiver: Recorder
) -> None:
    url = receiver.script("/gate", Answer(503, "busy", delay_s=0.5))  # retryable, answers slowly, forever
    hook = {"name": "gate", "type": "rollout", "url": url, "timeout": "1s", "retries": 10}
    running = await _start_rollout(emulator, canary(hook, progressDeadlineSeconds=2))
    async with running:
        await wait_for(emulator, lambda s: s.get("phase") == "Initialized", "initialized", 20)
        _release(emulator)
        await wait_for(emulator, lambda s: s.get("canaryWeight") == 50, "at weight 50", 20)
        started = time.monotonic()
        # 11 attempts of 0.5 s plus backoff took ~10 s in one tick before; the tick now stops at the deadline
        # (2 s, and at least one attempt), the failed hook fails the check, and threshold 1 rolls back.
        await wait_for(emulator, lambda s: s.get("phase") == "Failed", "rolled back", 8)
        assert time.monotonic() - started < 8
        assert status_of(emulator).get("canaryWeight") == 0


def test_the_budget_is_what_is_left_of_the_deadline_but_at_least_one_attempt() -> None:
    spec = make_spec(
        {
            "interval": "10s",
            "threshold": 2,
            "stepWeight": 20,
            "webhooks": [{"name": "slow", "type": "rollout", "url": "http://127.0.0.1:9/", "timeout": "45s"}],
        },
        progressDeadlineSeconds=600,
    )
    fresh = CanaryStatus.from_dict({"phase": "Progressing", "progressTime": "2026-12-07T10:00:00Z"})
    now = fresh.progress_time + 100 if fresh.progress_time is not None else 0.0
    assert hook_budget(spec, fresh, now, (HookType.ROLLOUT,)) == pytest.approx(500)
    assert hook_budget(spec, fresh, now + 590, (HookType.ROLLOUT,)) == pytest.approx(46)  # one attempt + slack
