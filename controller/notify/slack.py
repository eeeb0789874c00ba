"""Slack (Block Kit) and Rocket.Chat (Slack-compatible attachments) message bodies — pure rendering.

Slack gets Block Kit: a header, the message, the facts as fields, the evidence line as context and the commands
as a code block; ``text`` is the notification fallback. Rocket.Chat's incoming webhooks do not render Block Kit but
do render Slack's legacy attachments, so ``rocket`` uses those (as Flagger does).
"""

from __future__ import annotations

from typing import Any

from controller.notify.config import ProviderConfig
from controller.notify.message import Notification
from controller.rollout.spec import Severity

_HEADER_LIMIT = 150  # Slack rejects a plain_text header longer than this
ATTACHMENT_COLOR = {Severity.INFO: "good", Severity.WARN: "warning", Severity.ERROR: "danger"}


def _envelope(config: ProviderConfig) -> dict[str, Any]:
    body: dict[str, Any] = {"username": config.username}
    if config.channel:
        body["channel"] = config.channel
    return body


def _commands_block(commands: tuple[str, ...]) -> str:
    return "```" + "\n".join(commands) + "```"


def render_slack(message: Notification, config: ProviderConfig) -> dict[str, Any]:
    title = message.title
    if len(title) > _HEADER_LIMIT:
        title = title[: _HEADER_LIMIT - 1] + "…"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": message.message}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in message.facts()],
        },
    ]
    if message.evidence:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Evidence: {message.evidence}"}]})
    if message.commands:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _commands_block(message.commands)}})
    return {**_envelope(config), "text": f"{message.title} — {message.message}", "blocks": blocks}


def render_rocket(message: Notification, config: ProviderConfig) -> dict[str, Any]:
    fields = [{"title": label, "value": value, "short": True} for label, value in message.facts()]
    if message.evidence:
        fields.append({"title": "Evidence", "value": message.evidence, "short": False})
    if message.commands:
        fields.append({"title": "Commands", "value": _commands_block(message.commands), "short": False})
    attachment = {
        "color": ATTACHMENT_COLOR[message.severity],
        "author_name": f"{message.kind} {message.target}",
        "title": message.title,
        "text": message.message,
        "fields": fields,
    }
    return {**_envelope(config), "text": message.title, "attachments": [attachment]}
