"""The announcement outbox kept in ``status.outbox``: what a tick decided to tell, written with the decision itself.

A tick that announced its own decision (Events, webhooks, notifications) before kopf wrote the decided status could
be killed in between; the repeated tick might then decide differently, and the world had been told about a
transition that never happened. So a tick only *queues* its Events here, in the same status patch as the
transition, and the next tick announces what it finds stored (:mod:`controller.operator.outbox`). An announcement
then exists if and only if its transition was persisted.

Pure helpers only (building, reading and merging entries); the sending is in :mod:`controller.operator.outbox`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.rollout.decision import Event, EventType, Reason
from controller.rollout.spec import HookType

OUTBOX_KEY = "outbox"
"""The status field holding the queued announcements."""


@dataclass(frozen=True)
class OutboxEntry:
    """One queued announcement: a Kubernetes Event, its ``event`` webhooks and, when ``key`` is set, a notification.

    ``id`` is deterministic for a repeated tick (:func:`entry_id`) and names the Kubernetes Event, so recording it
    again after a crash is refused by the API (409) instead of duplicated. ``key`` is the notification's dedup key
    (the generic webhook's ``id``), the same on every redelivery.
    """

    id: str
    type: EventType
    reason: Reason
    message: str
    hook: HookType | None = None
    key: str | None = None

    @property
    def event(self) -> Event:
        return Event(self.type, self.reason, self.message, self.hook)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "type": self.type.value,
            "reason": self.reason.value,
            "message": self.message,
        }
        if self.hook is not None:
            out["hook"] = self.hook.value
        if self.key is not None:
            out["key"] = self.key
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> OutboxEntry:
        """Raises ValueError (or KeyError) for an entry this version cannot read."""
        hook = raw.get("hook")
        key = raw.get("key")
        return cls(
            id=str(raw["id"]),
            type=EventType(raw["type"]),
            reason=Reason(raw["reason"]),
            message=str(raw.get("message", "")),
            hook=HookType(hook) if hook else None,
            key=str(key) if key else None,
        )


def entry_id(uid: str, origin: str, reason: Reason, occurrence: int) -> str:
    """16 hex chars over (Canary uid, tick origin, reason, occurrence of that reason within the tick).

    ``origin`` identifies the stored status the tick started from, so a tick repeated after a crash gives its
    entries the same ids (this was the Event name digest before the outbox existed, and still is).
    """
    material = "\x1f".join((uid, origin, reason.value, str(occurrence)))
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def build_entries(
    uid: str, origin: str, events: Sequence[Event], keys: Sequence[str | None] = ()
) -> tuple[OutboxEntry, ...]:
    """The entries for one tick's Events, in order; ``keys[i]``: the notification key of ``events[i]`` (None or
    missing: the Event does not notify)."""
    seen: dict[Reason, int] = {}
    entries: list[OutboxEntry] = []
    for index, event in enumerate(events):
        occurrence = seen[event.reason] = seen.get(event.reason, -1) + 1
        entries.append(
            OutboxEntry(
                id=entry_id(uid, origin, event.reason, occurrence),
                type=event.type,
                reason=event.reason,
                message=event.message,
                hook=event.hook,
                key=keys[index] if index < len(keys) else None,
            )
        )
    return tuple(entries)


def read_outbox(raw_status: Mapping[str, Any]) -> tuple[OutboxEntry, ...]:
    """The stored entries; an unreadable one (written by another version) is skipped rather than blocking the rest."""
    entries: list[OutboxEntry] = []
    for raw in raw_status.get(OUTBOX_KEY) or ():
        if not isinstance(raw, Mapping):
            continue
        try:
            entries.append(OutboxEntry.from_dict(raw))
        except (KeyError, ValueError):
            continue
    return tuple(entries)


def merged(
    kept: Sequence[OutboxEntry], new: Sequence[OutboxEntry], known: Iterable[str] = ()
) -> list[dict[str, Any]] | None:
    """The outbox to store: every ``kept`` entry (still in flight), then the ``new`` ones whose id is neither kept
    nor ``known`` (queued or announced already): the same Event decided again from the same stored status is the
    same announcement. ``None`` (the field is removed) when nothing is left."""
    ids = {entry.id for entry in kept} | set(known)
    fresh: list[OutboxEntry] = []
    for entry in new:
        if entry.id not in ids:
            ids.add(entry.id)
            fresh.append(entry)
    return [entry.to_dict() for entry in (*kept, *fresh)] or None
