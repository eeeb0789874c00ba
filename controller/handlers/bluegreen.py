"""kopf registrations for BlueGreens (see :mod:`controller.handlers.common`).

One Deployment has one owner: a BlueGreen whose target is already managed by a Canary, or by an older BlueGreen,
touches nothing and says so in its status (the Canary wins because its objects would otherwise be fought over).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from controller.handlers.canary import INDEX as CANARY_INDEX
from controller.handlers.common import register_kind
from controller.kube.api import BLUEGREENS
from controller.rollout.kinds import BLUEGREEN
from controller.rollout.ownership import owner_conflict

PLURAL = "bluegreens"
INDEX = "bluegreens_by_target"


def bluegreen_conflict(
    body: Mapping[str, Any], bluegreens: Mapping[Any, Any], canaries: Mapping[Any, Any]
) -> str | None:
    """Why this BlueGreen must not act: a Canary, or an older BlueGreen, already manages its target."""
    return owner_conflict("BlueGreen", body, bluegreens, {"Canary": canaries})


def conflict(body: Mapping[str, Any], indexes: Mapping[str, Any]) -> str | None:
    return bluegreen_conflict(body, indexes[INDEX], indexes[CANARY_INDEX])


def register(registry: kopf.OperatorRegistry, tick_seconds: float, labels: Mapping[str, Any] | None = None) -> None:
    register_kind(
        registry,
        plural=PLURAL,
        strategy=BLUEGREEN,
        index_id=INDEX,
        conflict=conflict,
        tick_seconds=tick_seconds,
        resource=BLUEGREENS,
        labels=labels,
    )
