"""A :class:`~controller.kube.api.KubeApi` whose reads of some resources come from a :class:`WatchCache`.

Everything else passes through to the wrapped client unchanged; writes of cached resources are offered back to the
cache (or, on a conflict or a missing object, make it forget the object) — see :mod:`controller.kube.watchcache`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.kube.api import DEPLOYMENTS, DESTINATION_RULES, VIRTUAL_SERVICES, Object, PatchType, Resource
from controller.kube.client import KubeClient
from controller.kube.errors import ApiConflict, ApiNotFound
from controller.kube.watchcache import WatchCache

CACHED_RESOURCES = (DEPLOYMENTS, VIRTUAL_SERVICES, DESTINATION_RULES)
"""What every tick reads: the target and primary Deployments, the VirtualService, and (on a weight change) the
DestinationRules. Secrets are deliberately not among them (watching them needs cluster-wide read access to every
Secret)."""


class CachedKubeApi:
    """:class:`~controller.kube.api.KubeApi` over ``client`` with ``cache`` serving the reads it covers."""

    def __init__(self, client: KubeClient, cache: WatchCache) -> None:
        self.client = client
        self.cache = cache

    @classmethod
    def over(cls, client: KubeClient, namespaces: Sequence[str] = ()) -> CachedKubeApi:
        """Cache :data:`CACHED_RESOURCES` in ``namespaces`` (empty: cluster-wide, like ``--all-namespaces``)."""
        return cls(client, WatchCache(client, CACHED_RESOURCES, namespaces))

    def get(self, resource: Resource, namespace: str, name: str) -> Object | None:
        if self.cache.covers(resource, namespace):
            return self.cache.get(resource, namespace, name)
        return self.client.get(resource, namespace, name)

    def list(self, resource: Resource, namespace: str, label_selector: str | None = None) -> list[Object]:
        return self.client.list(resource, namespace, label_selector)

    def create(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Object:
        return self._kept(
            resource,
            namespace,
            str((body.get("metadata") or {}).get("name", "")),
            self.client.create,
            resource,
            namespace,
            body,
        )

    def replace(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Object:
        return self._kept(
            resource, namespace, str(body["metadata"]["name"]), self.client.replace, resource, namespace, body
        )

    def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        patch_type: PatchType = PatchType.MERGE,
        subresource: str | None = None,
    ) -> Object:
        return self._kept(
            resource, namespace, name, self.client.patch, resource, namespace, name, patch, patch_type, subresource
        )

    def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        try:
            return self.client.delete(resource, namespace, name)
        finally:
            self.cache.forget(resource, namespace, name)

    def close(self) -> None:
        self.cache.stop()
        self.client.close()

    def _kept(self, resource: Resource, namespace: str, name: str, write: Any, *args: Any) -> Object:
        """Run ``write``; keep its answer, or forget the object when the write shows the kept copy is stale."""
        try:
            answer: Object = write(*args)
        except (ApiConflict, ApiNotFound):
            self.cache.forget(resource, namespace, name)
            raise
        self.cache.offer(resource, answer)
        return answer
