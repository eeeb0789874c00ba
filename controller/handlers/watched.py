"""kopf watches of what every tick reads (Deployments, VirtualServices, DestinationRules), fed into the operator's
:class:`~controller.kube.watched.WatchedKubeApi` so ticks read them from memory.

``@kopf.on.event`` is the lightest kopf handler: no finalizer, no progress annotation, no retries; kopf lists and
watches the resource in the namespaces the operator serves, reconnects by itself, and skips a resource the API
server does not serve (Istio not installed) until it appears.
"""

from __future__ import annotations

from typing import Any

import kopf

from controller.kube.watched import WatchedKubeApi
from controller.operator.context import OperatorContext


def register(registry: kopf.OperatorRegistry, api_resources: Any) -> None:
    """One event handler per resource in ``api_resources`` (:class:`~controller.kube.api.Resource` objects)."""
    for resource in api_resources:

        async def observe(event: kopf.RawEvent, memo: kopf.Memo, _resource: Any = resource, **_: Any) -> None:
            ctx: OperatorContext | None = memo.get("ctx")
            api = ctx.api if ctx is not None else None
            if isinstance(api, WatchedKubeApi):
                api.observe(_resource, event.get("type"), event.get("object") or {})

        kopf.on.event(
            resource.group,
            resource.version,
            resource.plural,
            id=f"watch_{resource.plural}",
            registry=registry,
        )(observe)
