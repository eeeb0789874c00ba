"""What differs between the rollout kinds: parsing, the engine, the judge's policy, and when a rollout is decided.

Everything else — gathering observations, running looks and hooks, acting on the cluster, announcing Events — is one
shell (:mod:`controller.operator.reconcile`, and ``coalmine simulate``'s driver) that works on the Canary-shaped view
of a spec. A kind is therefore a
:class:`Strategy`: a value, not a subclass, so the shell stays one readable function and a new kind cannot change
how the existing one is reconciled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from analysis.policy import JudgePolicy
from controller.rollout import bluegreen, machine
from controller.rollout.bluegreen_spec import BlueGreenSpec, canary_view, parse_valid_bluegreen
from controller.rollout.decision import Decision
from controller.rollout.judging import policy_from_spec
from controller.rollout.observations import Observations
from controller.rollout.phases import Phase
from controller.rollout.spec import CanarySpec
from controller.rollout.status import CanaryStatus
from controller.rollout.validation import parse_valid_canary

SpecT = TypeVar("SpecT")


@dataclass(frozen=True)
class Strategy(Generic[SpecT]):
    """One rollout kind. ``parse`` raises :class:`~controller.rollout.validation.InvalidSpecError`; ``view`` gives
    the Canary-shaped spec the router, looks and actions work with; ``plan``/``step`` are the pure engine;
    ``policy`` is the judge's policy for the current status (it may depend on the phase only: ``coalmine simulate``
    caches it per phase); ``promoted`` says the rollout can no longer be rolled back by its analysis (the new
    revision is being, or has been, copied to the primary)."""

    kind: str
    parse: Callable[[Mapping[str, Any]], SpecT]
    view: Callable[[SpecT], CanarySpec]
    plan: Callable[[SpecT, CanaryStatus, float], machine.Probes]
    step: Callable[[SpecT, CanaryStatus, Observations, float], Decision]
    policy: Callable[[SpecT, CanaryStatus], JudgePolicy]
    promoted: Callable[[SpecT, CanaryStatus], bool]


def _same(spec: CanarySpec) -> CanarySpec:
    return spec


def _canary_policy(spec: CanarySpec, status: CanaryStatus) -> JudgePolicy:
    return policy_from_spec(spec)


def _canary_promoted(spec: CanarySpec, status: CanaryStatus) -> bool:
    return status.phase in (Phase.PROMOTING, Phase.FINALISING, Phase.SUCCEEDED)


def _bluegreen_promoted(spec: BlueGreenSpec, status: CanaryStatus) -> bool:
    """Promoting alone is not enough: until the post-promotion analysis passed, traffic can still go back to blue."""
    if status.phase is Phase.PROMOTING:
        return not bluegreen.post_promotion_running(spec, status)
    return status.phase in (Phase.FINALISING, Phase.SUCCEEDED)


CANARY: Strategy[CanarySpec] = Strategy(
    kind="Canary",
    parse=parse_valid_canary,
    view=_same,
    plan=machine.plan,
    step=machine.step,
    policy=_canary_policy,
    promoted=_canary_promoted,
)

BLUEGREEN: Strategy[BlueGreenSpec] = Strategy(
    kind="BlueGreen",
    parse=parse_valid_bluegreen,
    view=canary_view,
    plan=bluegreen.plan,
    step=bluegreen.step,
    policy=bluegreen.judge_policy,
    promoted=_bluegreen_promoted,
)
