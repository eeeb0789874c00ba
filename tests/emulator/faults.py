"""Deterministic fault injection: a configured fraction of API calls answered with 500, 409 or a timeout.

Issue 4 requires that rollouts end correctly while 10 % of API calls fail. The faults are drawn from a seeded
``random.Random`` in the order requests arrive, so a single-threaded sequence of calls fails identically on
every run; with concurrent clients the interleaving (and so which call fails) can vary, but the rate cannot.

A faulty call is *not applied*: the object is unchanged, as when a real API server fails before the write. A
"timeout" waits ``timeout_delay`` seconds (loop time, so it is instant under ``looptime``) and then answers 504
with reason ``Timeout``, as the API server does when a request exceeds its deadline; a client whose own timeout
is shorter sees a client-side timeout instead. 409 is only drawn for writes (a conflict on a read is
meaningless); watch streams are excluded unless ``include_watches`` is set, because an operator that loses its
watch reconnects and that is tested separately.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum


class FaultKind(StrEnum):
    SERVER_ERROR = "500"
    CONFLICT = "409"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class FaultPolicy:
    """What to inject. ``rate`` is the probability that an eligible call fails."""

    rate: float = 0.0
    kinds: tuple[FaultKind, ...] = (FaultKind.SERVER_ERROR, FaultKind.CONFLICT, FaultKind.TIMEOUT)
    seed: int = 0
    timeout_delay: float = 1.0
    include_watches: bool = False
    include_reads: bool = True
    plurals: frozenset[str] | None = None  # only these resources (e.g. {"deployments"}); None: all

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be within [0, 1], got {self.rate}")
        if self.rate and not self.kinds:
            raise ValueError("a positive fault rate needs at least one fault kind")


@dataclass
class FaultInjector:
    """Draws faults for eligible calls and counts them, so a test can assert the realised rate."""

    policy: FaultPolicy = field(default_factory=FaultPolicy)
    eligible: int = 0
    injected: Counter[FaultKind] = field(default_factory=Counter)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.policy.seed)

    @property
    def total_injected(self) -> int:
        return sum(self.injected.values())

    def draw(self, *, plural: str, is_write: bool, is_watch: bool) -> FaultKind | None:
        """Decide the fate of one call: ``None`` to serve it normally, or the fault to answer with."""
        policy = self.policy
        if policy.rate <= 0.0:
            return None
        if (is_watch and not policy.include_watches) or (not is_write and not policy.include_reads):
            return None
        if policy.plurals is not None and plural not in policy.plurals:
            return None
        kinds = policy.kinds if is_write else tuple(k for k in policy.kinds if k != FaultKind.CONFLICT)
        if not kinds:
            return None
        self.eligible += 1
        if self._rng.random() >= policy.rate:
            return None
        kind = kinds[self._rng.randrange(len(kinds))]
        self.injected[kind] += 1
        return kind
