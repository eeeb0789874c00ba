"""No secret in the operator's logs, and ``--log-level info`` means INFO (not kopf's debug output).

The leak reproduced here: with the operator's logging, httpx wrote ``HTTP Request: POST <incoming-webhook URL>``
for every notification — the URL is the Slack/Teams/Discord credential. The notification is sent for real, over
HTTP to a server on 127.0.0.1, and the test reads what the operator's log handler wrote.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator

import pytest
from http_recorder import Answer, Recorder, serve

from controller.logredact import MASK, RedactingFilter, forget_secrets, redact, remember_secret
from controller.notify import ClientPool, DeliveryStats, Notification, build_notifier, provider_config
from controller.operator.credentials import decode_secret
from controller.operator.runtime import configure_logging

WEBHOOK_PATH = "/services/T0AAAA/B0BBBB/XyZsecretPathPart123"


@pytest.fixture
def server() -> Iterator[Recorder]:
    yield from serve()


@pytest.fixture
def operator_log() -> Iterator[io.StringIO]:
    """What the operator's own log handler (installed by ``configure_logging``) writes, in a buffer."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    saved_levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "kopf")}
    buffer = io.StringIO()
    yield buffer
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    for name, level in saved_levels.items():
        logging.getLogger(name).setLevel(level)
    forget_secrets()


def _route_operator_handler_to(buffer: io.StringIO) -> None:
    handlers = [h for h in logging.getLogger().handlers if type(h).__name__ == "_KopfStreamHandler"]
    assert handlers and all(any(isinstance(f, RedactingFilter) for f in h.filters) for h in handlers)
    for handler in handlers:
        handler.setStream(buffer)  # type: ignore[attr-defined]


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
async def test_a_notification_webhook_url_from_a_secret_never_reaches_the_log(
    server: Recorder, operator_log: io.StringIO, level: int
) -> None:
    server.script(WEBHOOK_PATH, Answer(200, "ok"))
    configure_logging(level, json_format=False)
    _route_operator_handler_to(operator_log)
    url = server.base_url + WEBHOOK_PATH
    secret = {"data": {"address": base64.b64encode(url.encode()).decode()}}
    config = provider_config({"type": "slack", "channel": "deploys"}, decode_secret(secret))
    pool = ClientPool()
    try:
        message = Notification(name="podinfo", namespace="test", phase="Failed", reason="RolledBack", message="m")
        await build_notifier(config, pool=pool, stats=DeliveryStats(), label="test/on-call").post(message)
        logging.getLogger("httpx").info("HTTP Request: POST %s", url)  # as httpx does, if the level let it through
    finally:
        await pool.aclose()
    assert server.requests_to(WEBHOOK_PATH), "the notification was not delivered"
    written = operator_log.getvalue()
    assert "XyZsecretPathPart123" not in written
    if level == logging.DEBUG:
        assert MASK in written  # the line was written, masked — not silently dropped


def test_log_level_info_does_not_turn_on_kopfs_debug_output(operator_log: io.StringIO) -> None:
    configure_logging(logging.INFO, json_format=True)
    _route_operator_handler_to(operator_log)
    kopf_logger = logging.getLogger("kopf.objects")
    kopf_logger.debug("debug line")
    kopf_logger.info("info line")
    written = operator_log.getvalue()
    assert "info line" in written and "debug line" not in written
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)


def test_log_level_debug_is_debug(operator_log: io.StringIO) -> None:
    configure_logging(logging.DEBUG, json_format=True)
    _route_operator_handler_to(operator_log)
    logging.getLogger("kopf.objects").debug("debug line")
    assert "debug line" in operator_log.getvalue()


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("POST https://hooks.slack.com/services/T0/B0/abcdefgh failed", "abcdefgh"),
        ("POST https://contoso.webhook.office.com/webhookb2/1234-5678/IncomingWebhook/abc/def", "IncomingWebhook/abc"),
        ("POST https://discord.com/api/webhooks/123/tokentokentoken", "tokentokentoken"),
        ("GET https://chat.googleapis.com/v1/spaces/AAA/messages?key=kkkk&token=tttt", "tttt"),
        ("proxy http://user:hunter22@proxy:3128 refused", "hunter22"),
        ("header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("GET http://prom:9090/api/v1/query?query=up&access_token=zzzz9999", "zzzz9999"),
    ],
)
def test_credentials_in_any_line_are_masked(text: str, leaked: str) -> None:
    cleaned = redact(text)
    assert leaked not in cleaned and MASK in cleaned


def test_a_remembered_secret_is_masked_anywhere_and_ordinary_text_is_left_alone() -> None:
    try:
        remember_secret("p4ssw0rd-of-team-b", b"signing-key-bytes")
        assert redact("login with p4ssw0rd-of-team-b, sig signing-key-bytes") == f"login with {MASK}, sig {MASK}"
        plain = "canary podinfo.test promoted at 60% after 5 looks (http://prometheus:9090)"
        assert redact(plain) == plain
    finally:
        forget_secrets()


def test_an_exception_traceback_is_masked_too(operator_log: io.StringIO) -> None:
    configure_logging(logging.INFO, json_format=False)
    _route_operator_handler_to(operator_log)
    try:
        raise ConnectionError("cannot reach https://hooks.slack.com/services/T0/B0/tracebacksecret")
    except ConnectionError:
        logging.getLogger("coalmine.notify").exception("delivery failed")
    assert "tracebacksecret" not in operator_log.getvalue() and "delivery failed" in operator_log.getvalue()
