"""Webhooks against real HTTP receivers on 127.0.0.1: Flagger's status rule, retries, timeouts, concurrency,
rollback semantics and request signatures."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from http_recorder import Answer, Recorder, answers, closed_port_url, serve

from controller.hooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    EventInfo,
    HookPayload,
    ReplayGuard,
    RetryPolicy,
    call_hook,
    hook_phase,
    run_hooks,
    signature_headers,
    verify_signature,
)
from controller.rollout.spec import HookType, WebhookSpec

FAST = RetryPolicy(base_s=0.01, max_s=0.02)
PAYLOAD = HookPayload(name="podinfo", namespace="test", phase="Progressing", checksum="7d9f8c6b5")
SECRET = b"s3cret"


@pytest.fixture
def server() -> Iterator[Recorder]:
    yield from serve()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


def hook(url: str, type: HookType = HookType.ROLLOUT, **kwargs: object) -> WebhookSpec:
    return WebhookSpec(name=kwargs.pop("name", "check"), url=url, type=type, **kwargs)  # type: ignore[arg-type]


# --- Flagger's success rule: status ≤ 202 -------------------------------------------------------------------


@pytest.mark.parametrize(("status", "passed"), [(200, True), (201, True), (202, True), (204, False), (302, False)])
async def test_success_is_status_at_most_202(
    server: Recorder, client: httpx.AsyncClient, status: int, passed: bool
) -> None:
    url = server.script("/gate", Answer(status, "" if status in (204, 302) else "ok"))
    outcome = await run_hooks([hook(url)], PAYLOAD, client=client)
    assert outcome.passed is passed


async def test_payload_is_flaggers_shape_with_the_hooks_metadata(server: Recorder, client: httpx.AsyncClient) -> None:
    url = server.script("/load", Answer(200))
    spec = hook(url, HookType.PRE_ROLLOUT, metadata={"type": "bash", "cmd": "curl podinfo-canary"})
    await run_hooks([spec], PAYLOAD, client=client)
    (request,) = server.requests_to("/load")
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == {
        "name": "podinfo",
        "namespace": "test",
        "phase": "Progressing",
        "checksum": "7d9f8c6b5",
        "metadata": {"type": "bash", "cmd": "curl podinfo-canary"},
    }
    assert SIGNATURE_HEADER not in request.headers  # unsigned without a secret


async def test_event_hooks_carry_the_event_and_hook_metadata_cannot_override_it(
    server: Recorder, client: httpx.AsyncClient
) -> None:
    url = server.script("/events", Answer(202))
    spec = hook(url, HookType.EVENT, metadata={"eventType": "forged", "team": "payments"})
    event = HookPayload(
        name="podinfo", namespace="test", phase="Progressing", checksum="abc",
        event=EventInfo(message="Advance podinfo.test canary weight 10", type="Normal", timestamp_ms=1764144000123),
    )  # fmt: skip
    outcome = await run_hooks([spec], event, client=client)
    assert outcome.passed
    body = json.loads(server.requests_to("/events")[0].body)
    assert body["metadata"] == {
        "eventMessage": "Advance podinfo.test canary weight 10",
        "eventType": "Normal",
        "timestamp": "1764144000123",
        "team": "payments",
    }


@pytest.mark.parametrize(
    ("hook_type", "phase"),
    [
        (HookType.CONFIRM_ROLLOUT, "Progressing"),
        (HookType.CONFIRM_PROMOTION, "Progressing"),
        (HookType.ROLLOUT, "Progressing"),
        (HookType.POST_ROLLOUT, "Failed"),
        (HookType.ROLLBACK, "Failed"),
        (HookType.EVENT, "Failed"),
    ],
)
def test_payload_phase_follows_flagger(hook_type: HookType, phase: str) -> None:
    assert hook_phase(hook_type, "Failed") == phase


@pytest.mark.parametrize("status", [400, 403, 500])
async def test_failure_names_the_hook_and_its_answer(server: Recorder, client: httpx.AsyncClient, status: int) -> None:
    url = server.script("/gate", Answer(status, "gate is closed"))
    outcome = await run_hooks(
        [
            hook(url, HookType.CONFIRM_PROMOTION, name="approval"),
            hook(server.script("/ok", Answer(200)), HookType.CONFIRM_PROMOTION, name="x"),
        ],
        PAYLOAD,
        client=client,
    )
    assert not outcome.passed
    assert outcome.message == f"confirm-promotion hook 'approval' answered {status}: gate is closed"


# --- retries ------------------------------------------------------------------------------------------------


async def test_retries_5xx_until_success(server: Recorder, client: httpx.AsyncClient) -> None:
    url = server.script("/flaky", *answers(503, 500), Answer(200))
    result = await call_hook(hook(url, retries=3), PAYLOAD, client=client, policy=FAST)
    assert result.succeeded
    assert result.attempts == 3
    assert len(server.requests_to("/flaky")) == 3


async def test_retries_are_bounded(server: Recorder, client: httpx.AsyncClient) -> None:
    url = server.script("/down", Answer(502, "bad gateway"))
    outcome = await run_hooks([hook(url, retries=2)], PAYLOAD, client=client, policy=FAST)
    assert not outcome.passed
    assert "after 3 attempts" in outcome.message
    assert len(server.requests_to("/down")) == 3


async def test_a_4xx_answer_is_final_and_not_retried(server: Recorder, client: httpx.AsyncClient) -> None:
    url = server.script("/closed", *answers(403, 200))
    result = await call_hook(hook(url, retries=3), PAYLOAD, client=client, policy=FAST)
    assert not result.succeeded
    assert (result.status, result.attempts) == (403, 1)


async def test_backoff_grows_between_attempts(server: Recorder, client: httpx.AsyncClient) -> None:
    url = server.script("/down", Answer(500))
    await call_hook(hook(url, retries=2), PAYLOAD, client=client, policy=RetryPolicy(base_s=0.1, max_s=1.0))
    first, second, third = (request.at for request in server.requests_to("/down"))
    assert second - first >= 0.09
    assert third - second >= 0.19  # 0.1 then 0.2


def test_backoff_is_capped() -> None:
    assert [RetryPolicy(base_s=0.5, max_s=2.0).delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 2.0, 2.0]


# --- dead and slow receivers --------------------------------------------------------------------------------


async def test_a_dead_receiver_fails_the_hook_without_raising(client: httpx.AsyncClient) -> None:
    outcome = await run_hooks([hook(closed_port_url("/x"), retries=1)], PAYLOAD, client=client, policy=FAST)
    assert not outcome.passed
    assert "'check' did not answer after 2 attempts: ConnectError" in outcome.message


async def test_a_slow_receiver_is_cut_off_at_the_hook_timeout(server: Recorder, client: httpx.AsyncClient) -> None:
    url = server.script("/slow", Answer(200, delay_s=10))
    started = time.monotonic()
    outcome = await run_hooks([hook(url, timeout_s=0.3)], PAYLOAD, client=client)
    elapsed = time.monotonic() - started
    assert not outcome.passed
    assert "timed out after 0.3s" in outcome.message
    assert 0.25 <= elapsed < 2


async def test_a_receiver_dripping_bytes_cannot_outlast_the_timeout(
    server: Recorder, client: httpx.AsyncClient
) -> None:
    """httpx's timeouts bound each read; the hook timeout must bound the whole call."""
    url = server.script("/drip", Answer(200, drip_s=0.05))
    started = time.monotonic()
    outcome = await run_hooks([hook(url, timeout_s=0.4)], PAYLOAD, client=client)
    assert not outcome.passed
    assert "timed out after 0.4s" in outcome.message
    assert time.monotonic() - started < 1.5


async def test_hooks_of_one_type_run_concurrently(server: Recorder, client: httpx.AsyncClient) -> None:
    hooks = [hook(server.script(f"/h{i}", Answer(200, delay_s=0.5)), name=f"h{i}") for i in range(3)]
    started = time.monotonic()
    outcome = await run_hooks(hooks, PAYLOAD, client=client)
    assert outcome.passed
    assert time.monotonic() - started < 1.2  # one after the other they would take 1.5 s


async def test_a_slow_hook_does_not_delay_another_canarys_hook(server: Recorder, client: httpx.AsyncClient) -> None:
    slow = hook(server.script("/slow", Answer(200, delay_s=10)), timeout_s=1.5)
    fast = hook(server.script("/fast", Answer(200)))
    started = time.monotonic()
    finished: dict[str, float] = {}

    async def timed(label: str, spec: WebhookSpec) -> bool:
        outcome = await run_hooks([spec], PAYLOAD, client=client)
        finished[label] = time.monotonic() - started
        return outcome.passed

    slow_passed, fast_passed = await asyncio.gather(timed("slow", slow), timed("fast", fast))
    assert (slow_passed, fast_passed) == (False, True)
    assert finished["fast"] < 0.5 < 1.4 < finished["slow"]


# --- rollback semantics -------------------------------------------------------------------------------------


async def test_rollback_is_requested_when_any_rollback_hook_succeeds(
    server: Recorder, client: httpx.AsyncClient
) -> None:
    quiet = hook(server.script("/quiet", Answer(404)), HookType.ROLLBACK, name="quiet")
    asks = hook(server.script("/asks", Answer(200, "roll back")), HookType.ROLLBACK, name="pager")
    outcome = await run_hooks([quiet, asks], PAYLOAD, client=client)
    assert outcome.passed
    assert outcome.message == "rollback hook 'pager' answered 200: roll back"


async def test_no_rollback_when_every_rollback_hook_fails(server: Recorder, client: httpx.AsyncClient) -> None:
    quiet = hook(server.script("/quiet", Answer(404)), HookType.ROLLBACK, name="quiet")
    dead = hook(closed_port_url(), HookType.ROLLBACK, name="dead")
    outcome = await run_hooks([quiet, dead], PAYLOAD, client=client)
    assert not outcome.passed
    assert outcome.message == ""


async def test_hooks_of_mixed_types_are_refused(client: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="one type"):
        await run_hooks(
            [hook("http://a/", HookType.ROLLOUT), hook("http://b/", HookType.ROLLBACK)], PAYLOAD, client=client
        )


async def test_no_hooks_gate_nothing(client: httpx.AsyncClient) -> None:
    assert (await run_hooks([], PAYLOAD, client=client)).passed


# --- signatures ---------------------------------------------------------------------------------------------


async def test_signed_requests_verify_at_the_receiver(server: Recorder, client: httpx.AsyncClient) -> None:
    url = server.script("/signed", Answer(200))
    await run_hooks([hook(url)], PAYLOAD, client=client, secret=SECRET)
    (request,) = server.requests_to("/signed")
    assert request.headers[SIGNATURE_HEADER].startswith("sha256=")
    assert abs(int(request.headers[TIMESTAMP_HEADER]) - time.time()) < 5
    assert verify_signature(request.body, request.headers, SECRET)
    assert verify_signature(request.body, {k.lower(): v for k, v in request.headers.items()}, SECRET)


async def test_each_retry_is_signed_afresh(server: Recorder, client: httpx.AsyncClient) -> None:
    url = server.script("/flaky", Answer(500), Answer(200))
    ticks = iter([1_000.0, 1_007.0])
    await call_hook(hook(url, retries=1), PAYLOAD, client=client, secret=SECRET, policy=FAST, clock=lambda: next(ticks))
    first, second = server.requests_to("/flaky")
    assert (first.headers[TIMESTAMP_HEADER], second.headers[TIMESTAMP_HEADER]) == ("1000", "1007")
    assert verify_signature(second.body, second.headers, SECRET, now=1_010)


def test_signature_rejects_a_tampered_body() -> None:
    body = b'{"name":"podinfo"}'
    headers = signature_headers(body, SECRET, now=1_000, delivery="d-1")
    assert verify_signature(body, headers, SECRET, now=1_001)
    assert not verify_signature(b'{"name":"podinfo2"}', headers, SECRET, now=1_001)
    assert not verify_signature(body, headers, b"other secret", now=1_001)


def test_signature_rejects_a_stale_or_future_timestamp() -> None:
    body = b"{}"
    headers = signature_headers(body, SECRET, now=1_000, delivery="d-1")
    assert verify_signature(body, headers, SECRET, tolerance_s=300, now=1_300)
    assert not verify_signature(body, headers, SECRET, tolerance_s=300, now=1_301)
    assert not verify_signature(body, headers, SECRET, tolerance_s=300, now=699)


def test_signature_rejects_a_replayed_signature_with_a_new_timestamp() -> None:
    body = b"{}"
    headers = {**signature_headers(body, SECRET, now=1_000, delivery="d-1"), TIMESTAMP_HEADER: "1290"}
    assert not verify_signature(body, headers, SECRET, now=1_300)


def test_a_replay_within_the_window_is_rejected_by_a_receiver_that_remembers_deliveries() -> None:
    body = b'{"name":"podinfo"}'
    headers = signature_headers(body, SECRET, now=1_000)
    guard = ReplayGuard(tolerance_s=300)
    assert verify_signature(body, headers, SECRET, now=1_001, replay_guard=guard)
    assert not verify_signature(body, headers, SECRET, now=1_002, replay_guard=guard)  # the same request again
    retry = signature_headers(body, SECRET, now=1_003)  # a retry is a new delivery: accepted
    assert retry[DELIVERY_HEADER] != headers[DELIVERY_HEADER]
    assert verify_signature(body, retry, SECRET, now=1_004, replay_guard=guard)


def test_the_delivery_id_is_signed() -> None:
    body = b"{}"
    headers = signature_headers(body, SECRET, now=1_000, delivery="d-1")
    assert not verify_signature(body, {**headers, DELIVERY_HEADER: "d-2"}, SECRET, now=1_001)
    assert not verify_signature(body, {k: v for k, v in headers.items() if k != DELIVERY_HEADER}, SECRET, now=1_001)


def test_a_forged_request_does_not_use_up_the_guard() -> None:
    guard = ReplayGuard(tolerance_s=300, max_entries=1)
    body = b"{}"
    forged = {**signature_headers(body, b"not the secret", now=1_000, delivery="d-1")}
    assert not verify_signature(body, forged, SECRET, now=1_000, replay_guard=guard)
    assert verify_signature(
        body, signature_headers(body, SECRET, now=1_000, delivery="d-1"), SECRET, now=1_000, replay_guard=guard
    )


def test_the_guard_forgets_after_the_window_and_fails_closed_when_full() -> None:
    guard = ReplayGuard(tolerance_s=10, max_entries=2)
    assert guard.first_time("a", 100) and guard.first_time("b", 101)
    assert not guard.first_time("c", 102)  # full, every id still inside the window: refused, nothing forgotten
    assert not guard.first_time("a", 105)
    assert guard.first_time("c", 125)  # a and b are older than the window now (and would fail the timestamp)


async def test_a_captured_hook_request_replayed_is_refused(server: Recorder, client: httpx.AsyncClient) -> None:
    url = server.script("/gate", Answer(200))
    await call_hook(hook(url), PAYLOAD, client=client, secret=SECRET, policy=FAST)
    [request] = server.requests_to("/gate")
    guard = ReplayGuard()
    assert verify_signature(request.body, request.headers, SECRET, replay_guard=guard)
    assert not verify_signature(request.body, request.headers, SECRET, replay_guard=guard)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {SIGNATURE_HEADER: "sha256=00"},
        {TIMESTAMP_HEADER: "1000"},
        {SIGNATURE_HEADER: "x", TIMESTAMP_HEADER: "soon"},
    ],
)
def test_signature_rejects_missing_or_malformed_headers(headers: dict[str, str]) -> None:
    assert not verify_signature(b"{}", headers, SECRET, now=1_000)
