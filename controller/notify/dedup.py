"""One message per transition, across operator restarts: a pure key per transition, remembered in status.

Protocol (the operator's side):

1. For each notable Event of a tick, compute ``key = dedup_key(uid, revision, reason, phase, origin)``, where
   ``origin`` identifies the stored status the tick started from (``controller.operator.announce.tick_origin``).
2. Skip it if ``key`` is in ``status.notifications.sentKeys``.
3. Otherwise queue it in ``status.outbox`` with that key and write ``remember(sentKeys, key)`` in the same status
   patch that records the transition; the next tick sends it (``controller.operator.outbox``).

An operator killed before that patch has sent nothing, and its repeated tick queues only what it decides itself.
One killed while sending sends again from the stored outbox with the same key: a message is never lost to a
crash. A receiver may then see it twice, with the same key (the generic webhook's ``id``) to drop the repeat by.
The key is built from facts stored in the Canary itself, so an operator that restarts computes the same key for
the same transition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

DEFAULT_REMEMBERED = 20
"""How many keys status keeps; enough for every notable transition of a few rollouts."""


def dedup_key(uid: str, revision: str, reason: str, phase: str, last_transition_time: str) -> str:
    """A short stable key for one transition (16 hex chars of SHA-256 over the fields).

    ``uid`` (not name) so a deleted and re-created Canary notifies again; ``revision`` so the same transition of the
    next revision is new; ``lastTransitionTime`` so re-entering a phase later is a new transition.
    """
    material = "\x1f".join((uid, revision, reason, phase, last_transition_time)).encode("utf-8")
    return hashlib.sha256(material).hexdigest()[:16]


def remember(sent: Sequence[str], key: str, limit: int = DEFAULT_REMEMBERED) -> tuple[str, ...]:
    """``sent`` with ``key`` appended (moved to the end if present), keeping the newest ``limit`` keys."""
    kept = [existing for existing in sent if existing != key]
    kept.append(key)
    return tuple(kept[-limit:]) if limit > 0 else ()
