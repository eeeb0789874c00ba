"""Services as the API server types, defaults, allocates and validates them (``pkg/registry/core/service``).

An operator that takes over an apex Service, or rewrites one with PUT, relies on what the server keeps for it:
the allocated ``clusterIP`` and ``nodePort``\\s survive a write that omits them, and changing ``type`` drops what
the old type needed. The rules, in the server's order:

1. **Defaults** (``SetDefaults_Service``): ``type: ClusterIP``, ``sessionAffinity: None`` (``ClientIP`` gets
   ``timeoutSeconds: 10800``), ports ``protocol: TCP`` and ``targetPort`` = ``port``, ``internalTrafficPolicy:
   Cluster`` (not for ExternalName), ``externalTrafficPolicy: Cluster`` for NodePort/LoadBalancer (or external IPs),
   ``allocateLoadBalancerNodePorts: true`` for LoadBalancer.
2. On update, **type-dependent fields** the new type doesn't need are dropped when the write left them unchanged
   (``dropTypeDependentFields``): NodePort→ClusterIP releases the nodePorts, the external traffic policy, …
3. On update, **allocated values** the write omits are copied from the stored object (``patchAllocatedValues``):
   ``clusterIP``/``clusterIPs``; each port's ``nodePort`` by port *name*, unless that value is used by another port
   of the new object; ``healthCheckNodePort``.
4. **Validation** (422): unknown ``type``/``sessionAffinity``/``externalTrafficPolicy``; ``nodePort`` on a
   ClusterIP or ExternalName Service; ``externalTrafficPolicy`` on a Service not externally accessible; a
   ``clusterIP`` changed once set; a ``nodePort`` outside 30000–32767 or already allocated.
5. **Allocation**: a cluster IP (``ipFamilies: [IPv4]``, ``ipFamilyPolicy: SingleStack``), a nodePort for every port
   of a NodePort/LoadBalancer Service without one, a ``healthCheckNodePort`` for LoadBalancer + ``Local``.
   Allocations are released when the Service goes or no longer needs them (they are derived from stored objects).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .objects import Cause

NODE_PORTS = range(30000, 32768)
TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
_NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
_NONE = "None"


def _supported(value: Any, allowed: Iterable[str]) -> str:
    return f'Unsupported value: "{value}": supported values: ' + ", ".join(f'"{a}"' for a in allowed)


def _needs_cluster_ip(spec: Mapping[str, Any]) -> bool:
    return spec.get("type") != "ExternalName"


def _needs_node_port(spec: Mapping[str, Any]) -> bool:
    return spec.get("type") in _NODE_PORT_TYPES


def _needs_health_check_port(spec: Mapping[str, Any]) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _externally_accessible(spec: Mapping[str, Any]) -> bool:
    return _needs_node_port(spec) or (spec.get("type") == "ClusterIP" and bool(spec.get("externalIPs")))


def _ports(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [p for p in spec.get("ports") or () if isinstance(p, dict)]


def default(spec: dict[str, Any]) -> None:
    """``SetDefaults_Service`` (applied to every write's object before anything else)."""
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        config = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
        config.setdefault("timeoutSeconds", 10800)
    for port in _ports(spec):
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    if spec["type"] != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if _externally_accessible(spec) and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if spec["type"] == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)


def drop_type_dependent_fields(new: dict[str, Any], old: Mapping[str, Any]) -> None:
    """What the new type doesn't need, when the write didn't change it (``dropTypeDependentFields``)."""
    if _needs_cluster_ip(old) and not _needs_cluster_ip(new):
        if new.get("clusterIP") == old.get("clusterIP") and new.get("clusterIPs") == old.get("clusterIPs"):
            new.pop("clusterIP", None)
            new.pop("clusterIPs", None)
        for key in ("ipFamilies", "ipFamilyPolicy"):
            if new.get(key) == old.get(key):
                new.pop(key, None)
    same_node_ports = [p.get("nodePort") for p in _ports(new)] == [p.get("nodePort") for p in _ports(old)]
    if _needs_node_port(old) and not _needs_node_port(new) and same_node_ports:
        for port in _ports(new):
            port.pop("nodePort", None)
    same_health_port = new.get("healthCheckNodePort") == old.get("healthCheckNodePort")
    if _needs_health_check_port(old) and not _needs_health_check_port(new) and same_health_port:
        new.pop("healthCheckNodePort", None)
    if old.get("type") == "LoadBalancer" and new.get("type") != "LoadBalancer":
        for key in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if key in new and new.get(key) == old.get(key):
                new.pop(key)
    same_policy = new.get("externalTrafficPolicy") == old.get("externalTrafficPolicy")
    if _externally_accessible(old) and not _externally_accessible(new) and same_policy:
        new.pop("externalTrafficPolicy", None)


def patch_allocated_values(new: dict[str, Any], old: Mapping[str, Any]) -> None:
    """Keep what the server allocated when the write omits it (``patchAllocatedValues``)."""
    if _needs_cluster_ip(old) and _needs_cluster_ip(new):
        if not new.get("clusterIP") and old.get("clusterIP"):
            new["clusterIP"] = old["clusterIP"]
        if not new.get("clusterIPs") and old.get("clusterIPs"):
            new["clusterIPs"] = list(old["clusterIPs"])
    if _needs_node_port(old) and _needs_node_port(new):
        used = {p["nodePort"] for p in _ports(old) if p.get("nodePort")} & {
            p["nodePort"] for p in _ports(new) if p.get("nodePort")
        }
        by_name = {str(p.get("name") or ""): p.get("nodePort") for p in _ports(old)}
        for port in _ports(new):
            previous = by_name.get(str(port.get("name") or ""))
            if not port.get("nodePort") and previous and previous not in used:
                port["nodePort"] = previous
    keeps_health_port = _needs_health_check_port(old) and _needs_health_check_port(new)
    if keeps_health_port and not new.get("healthCheckNodePort") and old.get("healthCheckNodePort"):
        new["healthCheckNodePort"] = old["healthCheckNodePort"]


def _normalize_cluster_ips(spec: dict[str, Any], old: Mapping[str, Any] | None) -> None:
    """Keep ``clusterIP`` and ``clusterIPs`` in step (``normalizeClusterIPs``): a changed ``clusterIP`` with the
    stored ``clusterIPs`` left as they were changes the list too (and validation then refuses the change)."""
    if (
        old is not None
        and spec.get("clusterIP") != old.get("clusterIP")
        and spec.get("clusterIPs") == old.get("clusterIPs")
    ):
        if spec.get("clusterIP"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        else:
            spec.pop("clusterIPs", None)
        return
    if spec.get("clusterIP") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    elif spec.get("clusterIPs") and not spec.get("clusterIP"):
        spec["clusterIP"] = spec["clusterIPs"][0]


def validate(spec: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    kind = spec.get("type")
    if kind not in TYPES:
        causes.append(("spec.type", _supported(kind, TYPES), "FieldValueNotSupported"))
    if spec.get("sessionAffinity") not in ("None", "ClientIP"):
        value = spec.get("sessionAffinity")
        causes.append(("spec.sessionAffinity", _supported(value, ("ClientIP", "None")), "FieldValueNotSupported"))
    policy = spec.get("externalTrafficPolicy")
    if policy and policy not in ("Cluster", "Local"):
        causes.append(
            ("spec.externalTrafficPolicy", _supported(policy, ("Cluster", "Local")), "FieldValueNotSupported")
        )
    elif policy and not _externally_accessible(spec):
        detail = f'"{policy}": may only be set for externally-accessible services'
        causes.append(("spec.externalTrafficPolicy", detail))
    for index, port in enumerate(_ports(spec)):
        if port.get("nodePort") and kind in ("ClusterIP", "ExternalName"):
            body = f"Forbidden: may not be used when `type` is '{kind}'"
            causes.append((f"spec.ports[{index}].nodePort", body, "FieldValueForbidden"))
    if old is not None and _needs_cluster_ip(old) and _needs_cluster_ip(spec):
        before, after = old.get("clusterIPs") or [], spec.get("clusterIPs") or []
        if before and after and before[0] != after[0]:
            causes.append(("spec.clusterIPs[0]", f"{after!r}: may not change once set"))
    return causes


@dataclass
class ServiceAllocator:
    """Cluster IPs and node ports; what is in use is read from the stored Services on every write."""

    _ips: itertools.count[int] = field(default_factory=lambda: itertools.count(10))

    def admit(
        self, obj: dict[str, Any], old: Mapping[str, Any] | None, others: Iterable[Mapping[str, Any]]
    ) -> list[Cause]:
        """Default, patch, validate and allocate ``obj`` (``old``: the stored object on update); the 422 causes."""
        spec = obj.setdefault("spec", {})
        old_spec: Mapping[str, Any] | None = (old.get("spec") or {}) if old is not None else None
        default(spec)
        if old_spec is not None:
            drop_type_dependent_fields(spec, old_spec)
            patch_allocated_values(spec, old_spec)
        _normalize_cluster_ips(spec, old_spec)
        causes = validate(spec, old_spec)
        if causes:
            return causes
        taken_ports, taken_ips = set(), set()
        for other in others:
            other_spec = other.get("spec") or {}
            taken_ports |= {p["nodePort"] for p in _ports(other_spec) if p.get("nodePort")}
            if other_spec.get("healthCheckNodePort"):
                taken_ports.add(other_spec["healthCheckNodePort"])
            taken_ips |= set(other_spec.get("clusterIPs") or ())
        causes = self._allocate(spec, taken_ports, taken_ips)
        return causes

    def _allocate(self, spec: dict[str, Any], taken: set[int], taken_ips: set[str]) -> list[Cause]:
        causes: list[Cause] = []
        if _needs_cluster_ip(spec):
            if not spec.get("clusterIP"):
                spec["clusterIP"] = self._next_ip(taken_ips)
                spec["clusterIPs"] = [spec["clusterIP"]]
            elif spec["clusterIP"] != _NONE and spec["clusterIP"] in taken_ips:
                ip = spec["clusterIP"]
                causes.append(
                    ("spec.clusterIPs", f"{[ip]!r}: failed to allocate IP {ip}: provided IP is already allocated")
                )
            headless_selectorless = spec.get("clusterIP") == _NONE and not spec.get("selector")
            spec.setdefault("ipFamilies", ["IPv4", "IPv6"] if headless_selectorless else ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "RequireDualStack" if headless_selectorless else "SingleStack")
        mine: set[int] = set()
        wants_node_ports = _needs_node_port(spec) and spec.get("allocateLoadBalancerNodePorts", True) is not False
        for index, port in enumerate(_ports(spec)):
            given = port.get("nodePort")
            if given:
                path = f"spec.ports[{index}].nodePort"
                if given not in NODE_PORTS:
                    causes.append(
                        (
                            path,
                            f"{given}: provided port is not in the valid range. The range of valid ports is "
                            f"{NODE_PORTS.start}-{NODE_PORTS.stop - 1}",
                        )
                    )
                elif given in taken:
                    causes.append((path, f"{given}: provided port is already allocated"))
                mine.add(given)
        for port in _ports(spec):
            if wants_node_ports and not port.get("nodePort"):
                port["nodePort"] = self._next_port(taken | mine)
                mine.add(port["nodePort"])
        if _needs_health_check_port(spec) and not spec.get("healthCheckNodePort"):
            spec["healthCheckNodePort"] = self._next_port(taken | mine)
        return causes

    @staticmethod
    def _next_port(taken: set[int]) -> int:
        # The real allocator picks at random; the first free port keeps tests deterministic.
        return next(port for port in NODE_PORTS if port not in taken)

    def _next_ip(self, taken: set[str]) -> str:
        while True:
            number = next(self._ips)
            address = f"10.96.{number // 250}.{number % 250 + 1}"
            if address not in taken:
                return address
