"""Deterministic fault injection: a configured fraction of API calls answered with 500, 409 or a timeout.

Issue 4 requires that rollouts end correctly while 10 % of API calls fail. The faults are drawn from a seeded
``random.Random`` in the order requests arrive, so a single-threaded sequence of calls fails identically on
every run; with concurrent clients the interleaving (and so which call fails) can vary, but the rate cannot.

Faults are drawn the way a real API server produces them, so that surviving them proves something:

- **500**: the call fails before anything is written.
- **409 Conflict**: only for writes that ask for optimistic concurrency — a PUT, a patch carrying
  ``metadata.resourceVersion``, a delete with ``preconditions``. A real server never answers 409 to a plain
  merge patch (it retries its own storage conflicts), so injecting one there would test an impossible case.
  Where 409 is not possible, a 500 is answered instead, so the overall rate stays what was configured.
- **timeout**: waits ``timeout_delay`` seconds (loop time: instant under ``looptime``) and answers 504 with reason
  ``Timeout``, as the API server does when a request exceeds its deadline (a client with a shorter timeout sees a
  client-side timeout). For writes, a share ``lost_reply_share`` of timeouts happens *after* the write was
  applied — the lost-reply case that makes a retried create meet 409 AlreadyExists.

Reads are eligible unless ``include_reads`` is off; watch streams are excluded unless ``include_watches`` is set
(an operator that loses its watch reconnects, which is tested separately).
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
    lost_reply_share: float = 0.5
    include_watches: bool = False
    include_reads: bool = True
    plurals: frozenset[str] | None = None  # only these resources (e.g. {"deployments"}); None: all

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be within [0, 1], got {self.rate}")
        if self.rate and not self.kinds:
            raise ValueError("a positive fault rate needs at least one fault kind")


@dataclass(frozen=True)
class Fault:
    """One drawn fault; ``after_write`` means the write is applied before the (timed-out) answer."""

    kind: FaultKind
    after_write: bool = False


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

    def draw(self, *, plural: str, is_write: bool, is_watch: bool, can_conflict: bool = False) -> Fault | None:
        """Decide the fate of one call: ``None`` to serve it normally, or the fault to answer with.

        ``can_conflict``: the call carries a resourceVersion precondition, so a real server could answer 409.
        """
        policy = self.policy
        if policy.rate <= 0.0:
            return None
        if (is_watch and not policy.include_watches) or (not is_write and not policy.include_reads):
            return None
        if policy.plurals is not None and plural not in policy.plurals:
            return None
        self.eligible += 1
        if self._rng.random() >= policy.rate:
            return None
        kind = policy.kinds[self._rng.randrange(len(policy.kinds))]
        if kind == FaultKind.CONFLICT and not (is_write and can_conflict):
            kind = FaultKind.SERVER_ERROR
        after_write = kind == FaultKind.TIMEOUT and is_write and self._rng.random() < policy.lost_reply_share
        self.injected[kind] += 1
        return Fault(kind, after_write)
