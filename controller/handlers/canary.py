"""kopf registrations for Canaries (see :mod:`controller.handlers.common`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import kopf

from controller.handlers.common import register_kind
from controller.kube.api import CANARIES
from controller.rollout.kinds import CANARY
from controller.rollout.ownership import Blocker, blocker

PLURAL = "canaries"


def conflict(body: Mapping[str, Any], indexes: Mapping[str, Any]) -> Blocker | None:
    """The oldest Canary on a target owns it (``indexes``: kind → target index)."""
    return blocker("Canary", body, indexes["Canary"])


def register(
    registry: kopf.OperatorRegistry,
    tick_seconds: float,
    labels: Mapping[str, Any] | None = None,
    when: Callable[..., bool] | None = None,
) -> None:
    register_kind(
        registry,
        plural=PLURAL,
        strategy=CANARY,
        conflict=conflict,
        tick_seconds=tick_seconds,
        resource=CANARIES,
        labels=labels,
        when=when,
    )
