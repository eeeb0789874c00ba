"""ConfigMap and Secret tracking (pure): which configs a pod spec uses, their checksums, and ``-primary`` copies.

Flagger's rule, kept: a change to the *content* of a ConfigMap or Secret the target's pods use is a new revision
just like an image change, and the primary never shares a config with the canary — at promotion it gets
``<name>-primary`` copies, so editing a ConfigMap can't change production before the analysis says so.
A config annotated ``coalmine.dev/config-tracking: disabled`` (or Flagger's ``flagger.app/config-tracking``) is
left shared and untracked.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from controller.kube.errors import MissingConfig
from controller.kube.meta import copyable_annotations, copyable_labels, owner_reference, primary_name

CONFIG_TRACKING_ANNOTATION = "coalmine.dev/config-tracking"
_FLAGGER_TRACKING_ANNOTATION = "flagger.app/config-tracking"

Object = dict[str, Any]


class ConfigKind(StrEnum):
    CONFIGMAP = "configmap"
    SECRET = "secret"


@dataclass(frozen=True)
class ConfigRef:
    """One ConfigMap/Secret the pod spec refers to; ``optional`` only if *every* reference to it is optional."""

    kind: ConfigKind
    name: str
    optional: bool = False

    @property
    def key(self) -> str:
        """The key used in ``status.trackedConfigs``: ``configmap/NAME`` or ``secret/NAME``."""
        return f"{self.kind.value}/{self.name}"


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from pod_spec.get("initContainers") or ()
    yield from pod_spec.get("containers") or ()


def _holders(pod_spec: Mapping[str, Any]) -> Iterator[tuple[Any, str, ConfigKind]]:
    """Every place a pod spec names a config: (the mapping holding the name, the name's field, the kind).

    One walk shared by reading references and rewriting them, so both always agree on what is a reference.
    """
    for volume in pod_spec.get("volumes") or ():
        if volume.get("configMap"):
            yield volume["configMap"], "name", ConfigKind.CONFIGMAP
        if volume.get("secret"):
            yield volume["secret"], "secretName", ConfigKind.SECRET
        for source in (volume.get("projected") or {}).get("sources") or ():
            if source.get("configMap"):
                yield source["configMap"], "name", ConfigKind.CONFIGMAP
            if source.get("secret"):
                yield source["secret"], "name", ConfigKind.SECRET
    for container in _containers(pod_spec):
        for env in container.get("env") or ():
            value_from = env.get("valueFrom") or {}
            if value_from.get("configMapKeyRef"):
                yield value_from["configMapKeyRef"], "name", ConfigKind.CONFIGMAP
            if value_from.get("secretKeyRef"):
                yield value_from["secretKeyRef"], "name", ConfigKind.SECRET
        for env_from in container.get("envFrom") or ():
            if env_from.get("configMapRef"):
                yield env_from["configMapRef"], "name", ConfigKind.CONFIGMAP
            if env_from.get("secretRef"):
                yield env_from["secretRef"], "name", ConfigKind.SECRET


def _pod_spec(deployment: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}


def referenced_configs(deployment: Mapping[str, Any]) -> tuple[ConfigRef, ...]:
    """Every ConfigMap/Secret used by volumes (incl. projected), ``env`` and ``envFrom`` of (init) containers."""
    optional: dict[tuple[ConfigKind, str], bool] = {}
    for holder, field, kind in _holders(_pod_spec(deployment)):
        name = str(holder.get(field) or "")
        if name:
            optional[(kind, name)] = optional.get((kind, name), True) and bool(holder.get("optional"))
    return tuple(ConfigRef(kind, name, opt) for (kind, name), opt in sorted(optional.items()))


def config_checksum(config: Mapping[str, Any]) -> str:
    """A checksum of a ConfigMap's or Secret's content (``data``/``binaryData``/``stringData``), not its metadata."""
    content = {key: config.get(key) or {} for key in ("data", "binaryData", "stringData")}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _tracking_disabled(config: Mapping[str, Any]) -> bool:
    annotations = (config.get("metadata") or {}).get("annotations") or {}
    return any(
        str(annotations.get(key, "")).lower() == "disabled"
        for key in (CONFIG_TRACKING_ANNOTATION, _FLAGGER_TRACKING_ANNOTATION)
    )


def _by_name(configs: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    if isinstance(configs, Mapping):
        return {str(k): v for k, v in configs.items()}
    return {str((c.get("metadata") or {}).get("name")): c for c in configs}


def tracked_configs(
    deployment: Mapping[str, Any],
    configmaps: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]],
    secrets: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]],
) -> dict[str, str]:
    """``{"configmap/NAME": checksum, "secret/NAME": checksum}`` for the configs the target uses.

    ``configmaps``/``secrets`` are the objects in the namespace (by name, or a list). An optional reference to a
    config that does not exist is skipped (the pod starts without it); a required one raises
    :class:`MissingConfig`, because the pods could not start either. Untracked configs are left out.
    """
    found = {ConfigKind.CONFIGMAP: _by_name(configmaps), ConfigKind.SECRET: _by_name(secrets)}
    meta = deployment.get("metadata") or {}
    result: dict[str, str] = {}
    for ref in referenced_configs(deployment):
        config = found[ref.kind].get(ref.name)
        if config is None:
            if ref.optional:
                continue
            kind = "ConfigMap" if ref.kind is ConfigKind.CONFIGMAP else "Secret"
            raise MissingConfig(
                f"{kind} {meta.get('namespace', '')}/{ref.name} used by Deployment "
                f"{meta.get('namespace', '')}/{meta.get('name', '')} does not exist"
            )
        if not _tracking_disabled(config):
            result[ref.key] = config_checksum(config)
    return result


def rewrite_config_refs(pod_spec: Mapping[str, Any], tracked: Iterable[str]) -> Object:
    """A copy of ``pod_spec`` whose references to tracked configs (``configmap/N``, ``secret/N``) use ``N-primary``."""
    keys = set(tracked)
    spec: Object = copy.deepcopy(dict(pod_spec))
    for holder, field, kind in _holders(spec):
        name = holder.get(field)
        if name and f"{kind.value}/{name}" in keys:
            holder[field] = primary_name(str(name))
    return spec


def build_primary_config(config: Mapping[str, Any], canary_owner: Mapping[str, Any] | None = None) -> Object:
    """The ``<name>-primary`` copy of a ConfigMap or Secret: same content, never ``immutable``.

    ``immutable`` is dropped on purpose: the copy is rewritten at every promotion.
    """
    meta = config.get("metadata") or {}
    metadata: Object = {
        "name": primary_name(str(meta["name"])),
        "namespace": meta.get("namespace"),
        "labels": copyable_labels(meta.get("labels")),
        "annotations": copyable_annotations(meta.get("annotations")),
    }
    if canary_owner is not None:
        metadata["ownerReferences"] = [owner_reference(canary_owner)]
    # Items of a list answer carry no ``kind``; only Secrets have a ``type``.
    kind = config.get("kind") or ("Secret" if "type" in config else "ConfigMap")
    body: Object = {"apiVersion": "v1", "kind": kind, "metadata": metadata}
    for key in ("data", "binaryData", "stringData", "type"):
        if config.get(key) is not None:
            body[key] = copy.deepcopy(config[key])
    return body
