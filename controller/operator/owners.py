"""Which rollout objects target which Deployment: the index behind "one target, one Canary".

Each kind (Canary, BlueGreen) has a :class:`TargetIndex` of target → (creationTimestamp, name), read by
:func:`controller.rollout.ownership.blocker`. It lives in the operator's memory rather than in a kopf index:
kopf re-runs an index function through its whole handler machinery on every watch event, and with every tick writing
its status that was a tenth of the operator's CPU at a thousand Canaries. Instead:

- at startup (before any tick) every object of the kind is listed once (:func:`seed`), so the oldest owner is known
  before anything acts, as with a kopf index;
- every tick notes its own object (a new one, or a changed ``targetRef``), and the deletion handler drops it once
  it is released;
- an owner that disappeared without its deletion handler (a finalizer removed by hand) is checked for by the tick
  it blocks (:func:`confirm_owner`, at most once a minute per owner), so it cannot block a target forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from controller.kube.api import KubeApi, Resource
from controller.rollout.ownership import Entry, TargetKey, index_entry, target_key

CONFIRM_EVERY_S = 60.0
"""How long an owner found to exist is trusted before a tick it blocks checks again."""


class TargetIndex(Mapping[TargetKey, list[Entry]]):
    """target → the (creationTimestamp, name) of every object of one kind that targets it (see module doc)."""

    def __init__(self) -> None:
        self._by_uid: dict[str, tuple[TargetKey, Entry]] = {}
        self._by_key: dict[TargetKey, dict[str, Entry]] = {}
        self.confirmed: dict[tuple[TargetKey, str], float] = {}  # (target, owner name) → when it was seen to exist

    def note(self, body: Mapping[str, Any]) -> None:
        """Record (or move) ``body``'s entry; an object without a target is dropped."""
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        key = target_key(meta.get("namespace"), body.get("spec") or {})
        entry = index_entry(meta)
        if key is not None and self._by_uid.get(uid) == (key, entry):
            return
        self.drop(uid)
        if key is not None:
            self._by_uid[uid] = (key, entry)
            self._by_key.setdefault(key, {})[uid] = entry

    def drop(self, uid: str) -> None:
        found = self._by_uid.pop(uid, None)
        if found is None:
            return
        key = found[0]
        entries = self._by_key.get(key, {})
        entries.pop(uid, None)
        if not entries:
            self._by_key.pop(key, None)

    def drop_name(self, key: TargetKey, name: str) -> None:
        """Drop the object called ``name`` in ``key``'s namespace from ``key`` (it no longer exists)."""
        for uid, entry in list(self._by_key.get(key, {}).items()):
            if entry[1] == name:
                self.drop(uid)
        self.confirmed.pop((key, name), None)

    def __getitem__(self, key: TargetKey) -> list[Entry]:
        return list(self._by_key[key].values())

    def __iter__(self) -> Iterator[TargetKey]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)


def seed(
    api: KubeApi,
    resource: Resource,
    namespaces: Sequence[str],
    selector: str | None,
    index: TargetIndex,
    keep: Callable[[Mapping[str, Any]], bool] | None = None,
) -> int:
    """Note every ``resource`` object in ``namespaces`` (empty: all) carrying ``selector`` (and, if given, that
    ``keep`` accepts: this process's shard); how many there were. Blocking-style: run it with ``ctx.blocking``."""
    found = 0
    for namespace in namespaces or ("",):
        for item in api.list(resource, namespace, selector):
            if keep is not None and not keep(item):
                continue
            index.note(item)
            found += 1
    return found


def confirm_owner(api: KubeApi, resource: Resource, key: TargetKey, name: str, index: TargetIndex, now: float) -> bool:
    """Whether the owner ``name`` of ``key`` still exists; if not, it is dropped from ``index``. Blocking.

    A list of the namespace (the operator may list these objects; it has no use for single GETs), so it is done at
    most every :data:`CONFIRM_EVERY_S` per owner.
    """
    checked = index.confirmed.get((key, name))
    if checked is not None and now - checked < CONFIRM_EVERY_S:
        return True
    if any((item.get("metadata") or {}).get("name") == name for item in api.list(resource, key[0])):
        index.confirmed[(key, name)] = now
        return True
    index.drop_name(key, name)
    return False
