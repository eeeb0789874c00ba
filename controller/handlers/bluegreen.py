"""kopf registrations for BlueGreens (see :mod:`controller.handlers.common`).

One Deployment has one owner: a BlueGreen whose target is already managed by a Canary, or by an older BlueGreen,
touches nothing and says so in its status (the Canary wins because its objects would otherwise be fought over).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import kopf

from controller.handlers.common import register_kind
from controller.kube.api import BLUEGREENS
from controller.rollout.kinds import BLUEGREEN
from controller.rollout.ownership import Blocker, blocker

PLURAL = "bluegreens"


def conflict(body: Mapping[str, Any], indexes: Mapping[str, Any]) -> Blocker | None:
    """A Canary, or an older BlueGreen, already managing its target (``indexes``: kind → target index)."""
    return blocker("BlueGreen", body, indexes["BlueGreen"], {"Canary": indexes["Canary"]})


def register(
    registry: kopf.OperatorRegistry,
    tick_seconds: float,
    labels: Mapping[str, Any] | None = None,
    when: Callable[..., bool] | None = None,
) -> None:
    register_kind(
        registry,
        plural=PLURAL,
        strategy=BLUEGREEN,
        conflict=conflict,
        tick_seconds=tick_seconds,
        resource=BLUEGREENS,
        labels=labels,
        when=when,
    )
