"""One Deployment, one owner: which Canary or BlueGreen may act on a target (pure).

The operator keeps an index of target → (creationTimestamp, name) per kind. The oldest object of a kind owns its
target; a Canary wins over a BlueGreen on the same target (both would fight over the same ``-primary`` objects and
VirtualService). A loser touches nothing and reports the returned message in its status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Entry = tuple[str, str]  # (creationTimestamp, name): sorts oldest first
TargetKey = tuple[str, str]  # (namespace, target Deployment name)


def target_key(namespace: str | None, spec: Mapping[str, Any] | None) -> TargetKey | None:
    """The index key of a rollout object: its namespace and ``spec.targetRef.name`` (None without a target)."""
    target = (spec.get("targetRef") or {}).get("name") if isinstance(spec, Mapping) else None
    return (str(namespace), str(target)) if target else None


def index_entry(meta: Mapping[str, Any]) -> Entry:
    return (str(meta.get("creationTimestamp", "")), str(meta.get("name", "")))


def _oldest(entries: Iterable[Any]) -> Entry | None:
    ordered = sorted(tuple(entry) for entry in entries)
    return ordered[0] if ordered else None


@dataclass(frozen=True)
class Blocker:
    """The object that owns the target another one wants (``kind`` and ``name``, on target ``key``)."""

    kind: str
    key: TargetKey
    name: str

    def message(self) -> str:
        """What the blocked object reports in its status and Event (names the field, the target and the owner)."""
        return (
            f"spec.targetRef: Deployment {self.key[0]}/{self.key[1]} is already managed by {self.kind} {self.name}; "
            "one target can have only one Canary or BlueGreen"
        )


def blocker(
    kind: str,
    body: Mapping[str, Any],
    own: Mapping[Any, Any],
    preferred: Mapping[str, Mapping[Any, Any]] | None = None,
) -> Blocker | None:
    """Who owns ``body``'s target instead of it (``body`` is of ``kind``), or None if it owns its target.

    ``own`` is the index of its own kind; ``preferred`` maps other kinds that win over this one to their indexes.
    """
    meta = body.get("metadata") or {}
    key = target_key(meta.get("namespace"), body.get("spec") or {})
    if key is None:
        return None
    for other, index in (preferred or {}).items():
        winner = _oldest(index[key]) if key in index else None
        if winner is not None:
            return Blocker(other, key, winner[1])
    winner = _oldest(own[key]) if key in own else None
    if winner is None or winner == index_entry(meta):
        return None
    return Blocker(kind, key, winner[1])
