"""What the operator read from the cluster this tick, handed to the pure engine as one frozen record.

The engine never reads the cluster itself; everything it may react to is here, so a tick can be replayed exactly
(tables, property tests and ``coalmine simulate`` build these by hand).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from analysis.verdict import Verdict
from controller.rollout.phases import ManualAction
from controller.rollout.spec import HookType


@dataclass(frozen=True)
class TargetObservation:
    """The target Deployment (Flagger's "canary"): its pod-template hash and tracked ConfigMap/Secret checksums."""

    exists: bool = True
    pod_template_hash: str = ""
    tracked_configs: Mapping[str, str] = field(default_factory=dict)
    generation: int = 0


@dataclass(frozen=True)
class RouteWeights:
    """Weights read back from the router (the VirtualService), primary and canary, in percent."""

    primary: int
    canary: int


@dataclass(frozen=True)
class HookOutcome:
    """The combined result of all webhooks of one type run this tick.

    ``passed`` is True when every webhook of the type answered with success (HTTP ≤ 202) — a gate is open, a check
    passed. For ``rollback`` hooks it is True when at least one of them answered with success, which in Flagger's
    semantics *asks for a rollback*. ``message`` names the failing hook and its answer, for Events.
    """

    passed: bool
    message: str = ""


@dataclass(frozen=True)
class ManualRequest:
    """The latest manual request stored on the Canary (e.g. by ``kubectl coalmine promote``); ``id`` is unique."""

    id: str
    action: ManualAction
    at: float = 0.0


@dataclass(frozen=True)
class Observations:
    """One tick's inputs besides spec, status and time.

    ``primary_ready_percent``/``canary_ready_percent`` (0..100) are compared with ``primaryReadyThreshold`` and
    ``canaryReadyThreshold``. ``primary_revision`` is the pod-template hash most recently copied to the primary
    (by ``Initialize`` or ``PromotePrimary``, recorded in an annotation) and ``primary_updated`` is True when the
    primary's rollout of it has finished; the engine requires both to match what it expects. ``routes`` is None when
    the router object is missing. ``verdict`` is present only when the operator ran the analysis for this look
    (see :func:`controller.rollout.machine.plan`); ``hooks`` holds the outcome of each hook type it ran.
    ``generation`` is the Canary's ``metadata.generation``; ``deleting`` is True once it has a deletion timestamp.
    ``route_problem``: why the router's object is refused (a Gateway that did not accept the HTTPRoute, backends
    that do not resolve), or None. ``canary_stalled``: the target Deployment's own ``Progressing`` condition says
    ``ProgressDeadlineExceeded`` — Flagger treats that as final (no retry), and so does the engine.
    """

    target: TargetObservation = field(default_factory=TargetObservation)
    primary_ready_percent: float = 0.0
    canary_ready_percent: float = 0.0
    canary_stalled: bool = False
    primary_updated: bool = False
    primary_revision: str = ""
    routes: RouteWeights | None = None
    route_problem: str | None = None
    verdict: Verdict | None = None
    hooks: Mapping[HookType, HookOutcome] = field(default_factory=dict)
    request: ManualRequest | None = None
    generation: int = 0
    deleting: bool = False
