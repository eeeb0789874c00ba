"""Which shard of ``coalmine run --shard I/N`` a Canary or BlueGreen belongs to.

An object's shard is ``sha256(b"<namespace>/<name>")`` — the UTF-8 bytes, the first 8 bytes of the digest read as
a big-endian unsigned integer — modulo N. The hash must be *stable*: every process that takes part (the N shards,
each one's standby replica, the old and the new pods of a rolling update of the operator, whatever Python version
their images have) has to agree on who owns an object, or an object would be driven by two shards or by none.
Python's ``hash()`` is salted per process (``PYTHONHASHSEED``), so it cannot be used; SHA-256 is in every
standard library, identical everywhere, and mixes well enough that shards are balanced by name alone.

The key is the namespace and name only — never labels, spec or kind — because those are the only parts of an object
that can never change: an object never moves between shards, so no two shards ever hold it at once. A Canary and a
BlueGreen of the same name in one namespace are in the same shard.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass


def shard_of(namespace: str, name: str, count: int) -> int:
    """The shard (0 ≤ shard < ``count``) that handles ``namespace/name`` (see the module doc for the hash)."""
    if count < 1:
        raise ValueError(f"shard count {count}: must be at least 1")
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Shard:
    """This process's shard: ``index`` of ``count`` (0-based; ``Shard(0, 1)`` is everything)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: needs N ≥ 1 and 0 ≤ I < N")

    @property
    def everything(self) -> bool:
        """One shard: every object is this process's, nothing needs to be checked."""
        return self.count == 1

    def owns(self, namespace: str | None, name: str | None) -> bool:
        """Whether ``namespace/name`` is this shard's (a cluster-scoped object has the namespace "")."""
        return self.everything or shard_of(namespace or "", name or "", self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def finalizer(self) -> str:
        """The finalizer this process puts on its objects: one name per shard index.

        kopf takes *its* finalizer off every object it sees but does not handle, so with one shared name the shards
        took it off each other's objects on every tick. With a name per index each process touches only its own;
        and when N changes, the process of an index still in use takes its stale name off the objects that moved
        away, while the deletion handler removes the names of indexes no longer in use (:data:`FINALIZER_PREFIX`).
        """
        return FINALIZER if self.everything else f"{FINALIZER}-shard-{self.index}"


FINALIZER = "coalmine.dev/finalizer"
FINALIZER_PREFIX = FINALIZER
"""Every Coalmine finalizer starts so: the unsharded one and each shard's."""


def stale_finalizers(finalizers: list[str] | tuple[str, ...], own: str) -> list[str]:
    """The finalizers to keep when this process releases an object: everything but other Coalmine finalizers
    (left by an earlier shard layout; no running process would ever remove them, and the object would never go)."""
    return [name for name in finalizers if name == own or not name.startswith(FINALIZER_PREFIX)]


EVERYTHING = Shard(0, 1)
"""The one shard that is every object: ``coalmine run`` without ``--shard``."""


def parse_shard(text: str) -> Shard:
    """``I/N`` as given to ``--shard``: ``N ≥ 1`` shards, this being shard ``0 ≤ I < N``.

    Raises ValueError saying what is wrong (the CLI shows it naming the option).
    """
    match = re.fullmatch(r"([0-9]+)/([0-9]+)", text.strip())
    if match is None:
        raise ValueError(f"{text!r}: expected I/N, e.g. 0/4 (shard I of N, counted from 0)")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise ValueError(f"{text!r}: the number of shards N must be at least 1")
    if not 0 <= index < count:
        raise ValueError(f"{text!r}: the shard I must be from 0 to N-1 ({count - 1})")
    return Shard(index, count)
