"""Microsoft Teams (Adaptive Card), Discord (native embed) and Google Chat (cardsV2) bodies — pure rendering.

Choices, documented in ``docs/notifications.md``: Teams gets an Adaptive Card in a ``message`` envelope, which the
Teams *Workflows* webhooks accept (the Office 365 connectors that took Flagger's MessageCard are retired). Discord
gets its native embeds rather than the ``/slack`` compatibility endpoint Flagger uses, because embeds keep the
fields and code block; a Flagger-style address ending in ``/slack`` is posted to without that suffix.
"""

from __future__ import annotations

from typing import Any

from controller.notify.config import ProviderConfig
from controller.notify.message import Notification
from controller.rollout.spec import Severity

TEAMS_COLOR = {Severity.INFO: "Good", Severity.WARN: "Warning", Severity.ERROR: "Attention"}
DISCORD_COLOR = {Severity.INFO: 0x2EB67D, Severity.WARN: 0xECB22E, Severity.ERROR: 0xE01E5A}


def render_msteams(message: Notification, config: ProviderConfig) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": message.title,
            "weight": "Bolder",
            "size": "Medium",
            "color": TEAMS_COLOR[message.severity],
            "wrap": True,
        },
        {"type": "TextBlock", "text": message.message, "wrap": True},
        {"type": "FactSet", "facts": [{"title": label, "value": value} for label, value in message.facts()]},
    ]
    if message.evidence:
        body.append({"type": "TextBlock", "text": f"Evidence: {message.evidence}", "isSubtle": True, "wrap": True})
    for command in message.commands:
        body.append({"type": "TextBlock", "text": command, "fontType": "Monospace", "wrap": True})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def discord_address(address: str) -> str:
    """Flagger appends ``/slack`` to Discord URLs; Coalmine posts native embeds, so it strips that suffix."""
    return address[: -len("/slack")] if address.rstrip("/").endswith("/slack") else address


def render_discord(message: Notification, config: ProviderConfig) -> dict[str, Any]:
    fields = [{"name": label, "value": value, "inline": True} for label, value in message.facts()]
    if message.evidence:
        fields.append({"name": "Evidence", "value": message.evidence, "inline": False})
    if message.commands:
        fields.append({"name": "Commands", "value": "```\n" + "\n".join(message.commands) + "\n```", "inline": False})
    embed = {
        "title": message.title,
        "description": message.message,
        "color": DISCORD_COLOR[message.severity],
        "fields": fields,
    }
    return {"username": config.username, "embeds": [embed]}


def render_gchat(message: Notification, config: ProviderConfig) -> dict[str, Any]:
    sections: list[dict[str, Any]] = [
        {"widgets": [{"textParagraph": {"text": message.message}}]},
        {"widgets": [{"decoratedText": {"topLabel": label, "text": value}} for label, value in message.facts()]},
    ]
    if message.evidence:
        sections.append({"header": "Evidence", "widgets": [{"textParagraph": {"text": message.evidence}}]})
    if message.commands:
        commands = "<br>".join(f"<code>{command}</code>" for command in message.commands)
        sections.append({"header": "Commands", "widgets": [{"textParagraph": {"text": commands}}]})
    card = {
        "header": {"title": message.title, "subtitle": f"{message.kind} {message.target}"},
        "sections": sections,
    }
    return {"cardsV2": [{"cardId": f"coalmine-{message.namespace}-{message.name}", "card": card}]}
