"""Translate a Canary's Istio-style routing fields into Gateway API HTTPRoute terms, and say what cannot be.

A Canary keeps Flagger's spelling whatever the provider: ``service.match`` and ``analysis.match`` are Istio
``HTTPMatchRequest`` lists, ``service.headers`` Istio header operations, ``service.timeout`` a Go duration. The
Gateway API router writes them as HTTPRoute ``matches``, header modifier filters and ``timeouts`` the way Flagger's
Gateway API router does (``uri`` prefix/exact/regex → ``path`` PathPrefix/Exact/RegularExpression, headers and
query parameters exact/regex, ``method``). Conditions are ANDed with :mod:`controller.rollout.match_merge` first, as
for Istio, so both providers route the same requests to the canary.

What the standard channel of HTTPRoute (``gateway.networking.k8s.io/v1``) has no field for is reported by
:func:`spec_problems` at the Canary's field path instead of being dropped: ``retries`` (there is no ``retry`` in the
standard channel), ``corsPolicy``, ``trafficPolicy``, Istio ``gateways``, TCP services, and match fields such as
``withoutHeaders`` or ``sourceLabels``. Pure: shared by validation and the router.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from controller.rollout.gatewayapi_schema import subschema
from controller.rollout.match_merge import merge_match
from controller.rollout.problems import Findings, Problem, join
from controller.rollout.spec import CanarySpec
from controller.schema.cel import go_duration_ns

Object = dict[str, Any]

DEFAULT_MATCH: Object = {"path": {"type": "PathPrefix", "value": "/"}}
PATH_TYPES = {"exact": "Exact", "prefix": "PathPrefix", "regex": "RegularExpression"}
_LABEL_FIELDS = frozenset({"name", "statPrefix"})  # Istio match labels for stats: nothing to route on
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_GATEWAY_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
_RE2_SPECIAL = frozenset("\\.^$|?*+()[]{}")
_UNITS_MS = (("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1))
_WHY_ISTIO = "or use the istio provider"


def methods() -> frozenset[str]:
    """The HTTP methods an HTTPRoute can match (the CRD's enum)."""
    return frozenset(subschema("spec.rules[].matches[].method")["enum"])


def re2_literal(text: str) -> str:
    """``text`` as a regular expression matching exactly it (RE2 and Python agree on these escapes)."""
    return "".join(f"\\{char}" if char in _RE2_SPECIAL else char for char in text)


def gateway_duration(text: str) -> str | None:
    """``text`` (a Go duration: ``1.5s``, ``100ms``, ``1h30m``) as a Gateway API Duration (GEP-2257: up to four
    ``<1-5 digits><h|m|s|ms>`` parts, so ``1500ms``), or ``None`` if it has none (negative, sub-millisecond)."""
    if _GATEWAY_DURATION.match(text):
        return text
    nanoseconds = go_duration_ns(text)
    if nanoseconds is None or nanoseconds < 0 or nanoseconds % 1_000_000:
        return None
    remaining = nanoseconds // 1_000_000
    if remaining == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS_MS:
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    result = "".join(parts)
    return result if _GATEWAY_DURATION.match(result) else None


def _value_match(raw: Any, path: str, out: Findings) -> tuple[str, str] | None:
    """An Istio StringMatch of a header or query parameter as ``(type, value)``; a prefix becomes an anchored
    regular expression (HTTPRoute has no prefix match for them), no operator means "present"."""
    if not isinstance(raw, Mapping) or len(raw) > 1:
        out.problem(path, "must set one of exact, prefix or regex")
        return None
    if not raw:
        return "RegularExpression", ".*"
    ((operator, value),) = raw.items()
    if not isinstance(value, str) or not value:
        out.problem(join(path, str(operator)), "Gateway API cannot match an empty value")
        return None
    if operator == "exact":
        return "Exact", value
    if operator == "regex":
        return "RegularExpression", value
    if operator == "prefix":
        return "RegularExpression", f"^{re2_literal(value)}.*"
    out.problem(join(path, str(operator)), "must be exact, prefix or regex")
    return None


def _named_matches(raw: Any, path: str, out: Findings, *, headers: bool) -> list[Object]:
    found: list[Object] = []
    if not isinstance(raw, Mapping):
        out.problem(path, "must be a mapping of names to conditions")
        return found
    for name in sorted(raw, key=str):
        where = join(path, str(name))
        if headers and not _HEADER_NAME.match(str(name)):
            out.problem(where, "is not a header name Gateway API can match (no pseudo-headers such as :authority)")
            continue
        match = _value_match(raw[name], where, out)
        if match is not None:
            found.append({"name": str(name), "type": match[0], "value": match[1]})
    return found


def translate_match(condition: Mapping[str, Any], path: str, out: Findings) -> Object:
    """One Istio ``HTTPMatchRequest`` as an ``HTTPRouteMatch``; what it cannot carry is reported under ``path``."""
    result: Object = {}
    for key, value in condition.items():
        where = join(path, str(key))
        if key in _LABEL_FIELDS or (key == "ignoreUriCase" and value is False):
            continue
        if key == "uri":
            operator = next(iter(value), None) if isinstance(value, Mapping) and len(value) == 1 else None
            if operator not in PATH_TYPES or not isinstance(value[operator], str):
                out.problem(where, "must set one of exact, prefix or regex")
                continue
            result["path"] = {"type": PATH_TYPES[operator], "value": value[operator]}
        elif key == "method":
            method = value.get("exact") if isinstance(value, Mapping) and len(value) == 1 else None
            if method not in methods():
                out.problem(where, f"Gateway API matches one method exactly: {{exact: {'|'.join(sorted(methods()))}}}")
                continue
            result["method"] = method
        elif key == "headers":
            result["headers"] = _named_matches(value, where, out, headers=True)
        elif key == "queryParams":
            result["queryParams"] = _named_matches(value, where, out, headers=False)
        else:
            out.problem(
                where, f"Gateway API HTTPRoute matches have no equivalent of Istio's {key}; remove it {_WHY_ISTIO}"
            )
    return {key: value for key, value in result.items() if value != []}


def translate_matches(conditions: Sequence[Mapping[str, Any]], path: str, out: Findings) -> list[Object]:
    return [translate_match(condition, join(path, index), out) for index, condition in enumerate(conditions)]


def service_matches(spec: CanarySpec, out: Findings) -> list[Object]:
    """The ``matches`` of the weighted rule: ``service.match``, or every request (Flagger's ``PathPrefix /``)."""
    matches = translate_matches(spec.service.match, "spec.service.match", out)
    return matches or [dict(DEFAULT_MATCH)]


def ab_matches(spec: CanarySpec, out: Findings) -> list[Object]:
    """The ``matches`` of the A/B rule: every ``analysis.match`` condition ANDed with each ``service.match`` one."""
    translate_matches(spec.analysis.match, "spec.analysis.match", out)  # reported at the Canary's own paths
    merged = merge_match(spec.analysis.match, spec.service.match)
    return translate_matches(merged, "spec.analysis.match", Findings()) or [dict(DEFAULT_MATCH)]


def cookie_matches(spec: CanarySpec, cookie: str) -> list[Object]:
    """Flagger's sticky-session condition (``Cookie`` header matching ``.*<name>.*<value>.*``, metacharacters
    escaped) ANDed with each ``service.match`` condition."""
    name, _, value = cookie.partition("=")
    condition = {"headers": {"Cookie": {"regex": f".*{re2_literal(name)}.*{re2_literal(value)}.*"}}}
    return translate_matches(merge_match([condition], spec.service.match), "spec.service.match", Findings())


def header_filter(operations: Any, path: str, out: Findings) -> Object | None:
    """Istio ``HeaderOperations`` (``set``/``add`` maps, ``remove`` list) as an ``HTTPHeaderFilter``, entries sorted
    by name as Flagger writes them; ``None`` when there is nothing to do."""
    if operations is None:
        return None
    if not isinstance(operations, Mapping):
        out.problem(path, "must be a mapping with set, add or remove")
        return None
    result: Object = {}
    for key, value in operations.items():
        where = join(path, str(key))
        if key in ("set", "add") and isinstance(value, Mapping):
            entries = []
            for name in sorted(value, key=str):
                if not _HEADER_NAME.match(str(name)):
                    out.problem(join(where, str(name)), "is not a header name Gateway API can set")
                    continue
                entries.append({"name": str(name), "value": str(value[name])})
            if entries:
                result[str(key)] = entries
        elif key == "remove" and isinstance(value, list):
            if value:
                result["remove"] = [str(name) for name in value]
        else:
            out.problem(where, "Gateway API header filters have set and add (mappings) and remove (a list) only")
    return result or None


def _rewrite_problems(spec: CanarySpec, out: Findings) -> None:
    rewrite = spec.service.rewrite
    if not rewrite:
        return
    for key in rewrite:
        if key not in ("uri", "authority"):
            out.problem(
                join("spec.service.rewrite", str(key)), f"Gateway API URLRewrite has no equivalent; {_WHY_ISTIO}"
            )
    if "uri" in rewrite:
        # Gateway API replaces a path prefix only in a rule with exactly one PathPrefix match (a CEL rule).
        rules = [service_matches(spec, Findings())]
        if spec.analysis.match:
            rules.append(ab_matches(spec, Findings()))
        for matches in rules:
            paths = [m.get("path") or DEFAULT_MATCH["path"] for m in matches]
            if len(paths) != 1 or paths[0].get("type") != "PathPrefix":
                out.problem(
                    "spec.service.rewrite.uri",
                    "Gateway API rewrites a path prefix only for exactly one uri prefix condition; with it, "
                    "service.match (ANDed with analysis.match) must be a single condition with at most a uri prefix",
                )
                return


def spec_problems(spec: CanarySpec) -> list[Problem]:
    """What of ``spec`` a Gateway API HTTPRoute (standard channel) cannot carry, at the Canary's field paths."""
    out = Findings()
    service = spec.service
    if (service.app_protocol or "").lower() == "tcp":
        out.problem("spec.service.appProtocol", "an HTTPRoute carries HTTP only; TCP services need the istio provider")
    if tuple(service.gateways) != ("mesh",):
        out.problem("spec.service.gateways", "is Istio's; with Gateway API, attach the route with service.gatewayRefs")
    for field, value, why in (
        ("retries", service.retries, "the standard channel of HTTPRoute has no retry field"),
        ("corsPolicy", service.cors_policy, "the Gateway API router does not translate Istio CORS policies"),
        ("trafficPolicy", service.traffic_policy, "it is a DestinationRule's; Gateway API has no place for it"),
    ):
        if value:
            out.problem(f"spec.service.{field}", f"{why}; remove it {_WHY_ISTIO}")
    for index, host in enumerate(service.hosts):
        if not _HOSTNAME.match(host):
            out.problem(
                join("spec.service.hosts", index),
                f"Gateway API hostnames are lower-case DNS names, optionally starting with *. (got {host!r}); "
                "leave hosts empty to match every host",
            )
    if service.timeout is not None and gateway_duration(str(service.timeout)) is None:
        out.problem("spec.service.timeout", f"must be a whole number of milliseconds or more (got {service.timeout!r})")
    headers = service.headers or {}
    for side, operations in headers.items():
        if side in ("request", "response"):
            header_filter(operations, join("spec.service.headers", str(side)), out)
        else:
            out.problem(join("spec.service.headers", str(side)), "must be request or response")
    service_matches(spec, out)
    try:
        if spec.analysis.match:
            ab_matches(spec, out)
        _rewrite_problems(spec, out)
    except ValueError:
        pass  # conditions that cannot be ANDed: validation reports them for every provider (canary_rules)
    return out.problems


def percent_of(fraction: Mapping[str, Any]) -> int:
    """A RequestMirror ``fraction`` as a whole percentage (how a route edited by hand is read back)."""
    numerator = Decimal(str(fraction.get("numerator", 0)))
    denominator = Decimal(str(fraction.get("denominator", 100))) or Decimal(100)
    return round(numerator * 100 / denominator)
