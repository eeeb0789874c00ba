"""Notifications: exact payloads per provider (golden JSON) as received by a real local server, severity routing,
retries and failure counting, Secret handling, and dedup keys."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from http_recorder import Answer, Recorder, closed_port_url, serve

from controller.hooks import RetryPolicy, verify_signature
from controller.notify import (
    ClientPool,
    DeliveryStats,
    Notification,
    ProviderConfig,
    ProviderConfigError,
    ProviderType,
    WorkloadKind,
    action_commands,
    alerts_for,
    broadcast,
    build_notifier,
    dedup_key,
    is_notable,
    provider_config,
    remember,
    severity_for,
    should_send,
)
from controller.rollout.decision import EventType, Reason
from controller.rollout.spec import AlertSpec, ObjectRef, Severity

GOLDEN = Path(__file__).parent / "golden" / "notify"
FAST = RetryPolicy(base_s=0.01, max_s=0.02)

ROLLED_BACK = Notification(
    name="podinfo",
    namespace="test",
    phase="Failed",
    reason="RolledBack",
    message="Canary podinfo.test rolled back: canary 5xx rate above the primary's",
    severity=Severity.ERROR,
    kind=WorkloadKind.CANARY,
    weight=20,
    revision="7d9f8c6b5",
    image="ghcr.io/stefanprodan/podinfo:6.5.1",
    evidence="canary 5xx 2.1× primary, p = 0.004",
    commands=action_commands("podinfo", "test", "Failed"),
)


@pytest.fixture
def server() -> Iterator[Recorder]:
    yield from serve()


@pytest.fixture
async def pool() -> AsyncIterator[ClientPool]:
    clients = ClientPool()
    yield clients
    await clients.aclose()


def config(kind: ProviderType, url: str, **extra: str) -> ProviderConfig:
    return provider_config({"type": str(kind), "address": url, "channel": "deploys", **extra})


# --- golden payloads ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(ProviderType))
async def test_payload_matches_golden(kind: ProviderType, server: Recorder, pool: ClientPool) -> None:
    path = f"/{kind}"
    url = server.script(path, Answer(200, "ok"))
    stats = DeliveryStats()
    await build_notifier(config(kind, url), pool=pool, stats=stats).post(ROLLED_BACK)
    (request,) = server.requests_to(path)
    received = json.loads(request.body)
    golden = GOLDEN / f"{kind}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(received, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert received == json.loads(golden.read_text(encoding="utf-8"))
    assert request.headers["Content-Type"] == "application/json"
    assert stats.snapshot() == {"sent": {str(kind): 1}, "failed": {}, "retries": {}}


def test_every_golden_carries_what_a_person_needs() -> None:
    """Each provider's message shows the image, phase, weight, evidence and the exact commands."""
    for kind in ProviderType:
        text = (GOLDEN / f"{kind}.json").read_text(encoding="utf-8")
        for needed in ("ghcr.io/stefanprodan/podinfo:6.5.1", "Failed", "canary 5xx 2.1× primary, p = 0.004"):
            assert needed in text, (kind, needed)
        assert "20%" in text or '"weight": 20' in text, kind
        assert "kubectl coalmine retry podinfo -n test" in text, kind


async def test_discord_posts_embeds_without_flaggers_slack_suffix(server: Recorder, pool: ClientPool) -> None:
    url = server.script("/api/webhooks/1/abc", Answer(204))
    stats = DeliveryStats()
    notifier = build_notifier(config(ProviderType.DISCORD, url + "/slack"), pool=pool, stats=stats)
    await notifier.post(ROLLED_BACK)
    assert len(server.requests_to("/api/webhooks/1/abc")) == 1
    assert stats.sent["discord"] == 1  # Discord answers 204: any 2xx is a delivery


async def test_slack_long_headers_are_cut_to_slacks_limit(server: Recorder, pool: ClientPool) -> None:
    url = server.script("/s", Answer(200))
    long = Notification(name="x" * 200, namespace="test", phase="Progressing", reason="NewRevision", message="m")
    await build_notifier(config(ProviderType.SLACK, url), pool=pool, stats=DeliveryStats()).post(long)
    header = json.loads(server.requests_to("/s")[0].body)["blocks"][0]["text"]["text"]
    assert len(header) == 150
    assert header.endswith("…")


async def test_slack_token_is_sent_as_bearer_and_an_api_refusal_counts_as_failure(
    server: Recorder, pool: ClientPool
) -> None:
    url = server.script("/api/chat.postMessage", Answer(200, '{"ok": false, "error": "channel_not_found"}'))
    stats = DeliveryStats()
    notifier = build_notifier(config(ProviderType.SLACK, url, token="xoxb-1"), pool=pool, stats=stats, policy=FAST)
    await notifier.post(ROLLED_BACK)
    (request,) = server.requests_to("/api/chat.postMessage")  # a refusal is an answer: not retried
    assert request.headers["Authorization"] == "Bearer xoxb-1"
    assert stats.failed["slack"] == 1


async def test_generic_webhook_is_signed_with_the_token(server: Recorder, pool: ClientPool) -> None:
    url = server.script("/receiver", Answer(200))
    await build_notifier(config(ProviderType.WEBHOOK, url, token="hmac-key"), pool=pool, stats=DeliveryStats()).post(
        ROLLED_BACK
    )
    (request,) = server.requests_to("/receiver")
    assert verify_signature(request.body, request.headers, b"hmac-key")
    assert not verify_signature(request.body, request.headers, b"other")


# --- delivery: retries, failures, timeouts ------------------------------------------------------------------


async def test_transient_failures_are_retried(server: Recorder, pool: ClientPool) -> None:
    url = server.script("/flaky", Answer(503), Answer(429), Answer(200))
    stats = DeliveryStats()
    await build_notifier(config(ProviderType.SLACK, url), pool=pool, stats=stats, policy=FAST).post(ROLLED_BACK)
    assert len(server.requests_to("/flaky")) == 3
    assert stats.snapshot() == {"sent": {"slack": 1}, "failed": {}, "retries": {"slack": 2}}


async def test_failures_are_bounded_counted_and_never_raised(server: Recorder, pool: ClientPool) -> None:
    url = server.script("/down", Answer(500))
    stats = DeliveryStats()
    notifier = build_notifier(config(ProviderType.MSTEAMS, url), pool=pool, stats=stats, attempts=3, policy=FAST)
    await notifier.post(ROLLED_BACK)  # does not raise
    assert len(server.requests_to("/down")) == 3
    assert stats.snapshot() == {"sent": {}, "failed": {"msteams": 1}, "retries": {"msteams": 2}}


async def test_a_4xx_is_not_retried(server: Recorder, pool: ClientPool) -> None:
    url = server.script("/gone", Answer(404), Answer(200))
    stats = DeliveryStats()
    await build_notifier(config(ProviderType.GCHAT, url), pool=pool, stats=stats, policy=FAST).post(ROLLED_BACK)
    assert len(server.requests_to("/gone")) == 1
    assert stats.failed["gchat"] == 1


async def test_a_dead_provider_is_counted_and_logged_without_leaking_its_address(
    pool: ClientPool, caplog: pytest.LogCaptureFixture
) -> None:
    url = closed_port_url("/T000/B000/secret-path")
    stats = DeliveryStats()
    notifier = build_notifier(config(ProviderType.SLACK, url), pool=pool, stats=stats, label="test/chat", policy=FAST)
    await notifier.post(ROLLED_BACK)
    assert stats.failed["slack"] == 1
    assert "test/chat" in caplog.text
    assert "secret-path" not in caplog.text
    assert "secret-path" not in repr(notifier.config)


async def test_a_slow_provider_is_cut_off_and_does_not_delay_another(server: Recorder, pool: ClientPool) -> None:
    slow_url = server.script("/slow", Answer(200, delay_s=10))
    fast_url = server.script("/fast", Answer(200))
    stats = DeliveryStats()
    slow = build_notifier(config(ProviderType.SLACK, slow_url), pool=pool, stats=stats, attempts=1, timeout_s=0.5)
    fast = build_notifier(config(ProviderType.WEBHOOK, fast_url), pool=pool, stats=stats)
    started = time.monotonic()
    await broadcast([slow, fast], ROLLED_BACK)
    elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 2
    (fast_request,) = server.requests_to("/fast")
    (slow_request,) = server.requests_to("/slow")
    assert abs(fast_request.at - slow_request.at) < 0.3  # both sent at once, not one after the other
    assert stats.snapshot()["sent"] == {"webhook": 1}
    assert stats.snapshot()["failed"] == {"slack": 1}


# --- severity routing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "message", "sent"),
    [
        (Severity.INFO, Severity.INFO, True),
        (Severity.INFO, Severity.WARN, True),
        (Severity.INFO, Severity.ERROR, True),
        (Severity.WARN, Severity.INFO, False),
        (Severity.WARN, Severity.WARN, True),
        (Severity.WARN, Severity.ERROR, True),
        (Severity.ERROR, Severity.INFO, False),
        (Severity.ERROR, Severity.WARN, False),
        (Severity.ERROR, Severity.ERROR, True),
    ],
)
def test_should_send_routes_info_over_warn_over_error(provider: Severity, message: Severity, sent: bool) -> None:
    assert should_send(provider, message) is sent


def test_alerts_for_keeps_spec_order_and_filters_by_severity() -> None:
    alerts = [
        AlertSpec("on-call", ObjectRef("pager"), Severity.ERROR),
        AlertSpec("team", ObjectRef("slack"), Severity.INFO),
        AlertSpec("leads", ObjectRef("teams"), Severity.WARN),
    ]
    assert [a.name for a in alerts_for(alerts, Severity.WARN)] == ["team", "leads"]
    assert [a.name for a in alerts_for(alerts, Severity.ERROR)] == ["on-call", "team", "leads"]
    assert [a.name for a in alerts_for(alerts, Severity.INFO)] == ["team"]


@pytest.mark.parametrize(
    ("reason", "event_type", "severity"),
    [
        (Reason.ROLLED_BACK, EventType.WARNING, Severity.ERROR),
        (Reason.PROGRESS_DEADLINE_EXCEEDED, EventType.WARNING, Severity.ERROR),
        (Reason.ROLLBACK_REQUESTED, EventType.NORMAL, Severity.ERROR),
        (Reason.ABORTED, EventType.NORMAL, Severity.ERROR),
        (Reason.WAITING_PROMOTION, EventType.NORMAL, Severity.WARN),
        (Reason.NO_DATA, EventType.WARNING, Severity.WARN),
        (Reason.ADVANCED, EventType.WARNING, Severity.WARN),
        (Reason.NEW_REVISION, EventType.NORMAL, Severity.INFO),
        (Reason.SUCCEEDED, EventType.NORMAL, Severity.INFO),
    ],
)
def test_severity_for_event_reasons(reason: Reason, event_type: EventType, severity: Severity) -> None:
    assert severity_for(reason, event_type) == severity


def test_only_notable_transitions_notify() -> None:
    assert is_notable(Reason.NEW_REVISION) and is_notable(Reason.SUCCEEDED) and is_notable(Reason.ROLLED_BACK)
    assert not is_notable(Reason.ADVANCED)  # each weight step stays an Event only
    assert not is_notable(Reason.INITIALIZING)


@pytest.mark.parametrize(
    ("phase", "verbs"),
    [
        ("WaitingPromotion", ["promote", "abort"]),
        ("Progressing", ["promote", "abort"]),
        ("Failed", ["retry", "explain"]),
        ("Succeeded", ["explain"]),
    ],
)
def test_commands_fit_the_phase(phase: str, verbs: list[str]) -> None:
    commands = action_commands("podinfo", "test", phase)
    assert commands == tuple(f"kubectl coalmine {verb} podinfo -n test" for verb in verbs)


# --- provider config from spec, Secret and flags ------------------------------------------------------------


def test_secret_keys_override_the_spec_and_are_cleaned() -> None:
    spec = {"type": "slack", "address": "https://hooks.example/old", "channel": "general", "secretRef": {"name": "s"}}
    secret = {"address": b"https://hooks.slack.com/services/T/B/X\n", "token": b"xoxb-2", "channel": "deploys"}
    result = provider_config(spec, secret)
    assert (result.type, result.address, result.channel, result.token) == (
        ProviderType.SLACK,
        "https://hooks.slack.com/services/T/B/X",
        "deploys",
        "xoxb-2",
    )
    assert result.username == "coalmine"
    assert "hooks.slack.com" not in repr(result) and "xoxb" not in repr(result)


@pytest.mark.parametrize(
    ("spec", "secret", "problem"),
    [
        ({"type": "slack"}, None, "no address"),
        ({"type": "slack", "secretRef": {"name": "s"}}, {"token": "t"}, "no address"),
        ({"type": "pagerduty", "address": "https://x.example"}, None, "unknown provider type 'pagerduty'"),
        ({"type": "slack", "address": "hooks.slack.com/x"}, None, "address must be an http"),
        ({"type": "slack", "address": "https://x.example", "proxy": "socks"}, None, "proxy must be an http"),
    ],
)
def test_unusable_providers_are_refused(spec: dict[str, object], secret: dict[str, str] | None, problem: str) -> None:
    with pytest.raises(ProviderConfigError, match=problem):
        provider_config(spec, secret)


def test_default_provider_from_operator_flags() -> None:
    assert ProviderConfig.from_flags(None) is None
    assert ProviderConfig.from_flags("") is None
    default = ProviderConfig.from_flags("https://chat.example/hook", "msteams")
    assert default is not None
    assert (default.type, default.address) == (ProviderType.MSTEAMS, "https://chat.example/hook")
    with pytest.raises(ProviderConfigError):
        ProviderConfig.from_flags("https://chat.example/hook", "carrier-pigeon")


# --- dedup --------------------------------------------------------------------------------------------------


def test_dedup_key_is_stable_across_processes() -> None:
    key = dedup_key("9a1c-uid", "7d9f8c6b5", "RolledBack", "Failed", "2026-11-26T08:00:00Z")
    assert key == "c6a336a5c90b20b1"  # pinned: a restarted operator must compute the same key


@pytest.mark.parametrize("field", range(5))
def test_dedup_key_changes_with_every_field(field: int) -> None:
    parts = ["uid", "rev", "Succeeded", "Succeeded", "2026-11-26T08:00:00Z"]
    changed = list(parts)
    changed[field] += "x"
    assert dedup_key(*parts) != dedup_key(*changed)


def test_remember_keeps_the_newest_keys_once() -> None:
    assert remember(("a", "b", "c"), "d", limit=3) == ("b", "c", "d")
    assert remember(("a", "b", "c"), "a", limit=3) == ("b", "c", "a")
    assert remember((), "a") == ("a",)
