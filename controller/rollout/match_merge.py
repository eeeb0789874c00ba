"""AND an A/B (or sticky-cookie) Istio ``HTTPMatchRequest`` with each of ``service.match``, field by field.

Flagger's ``mergeMatchConditions`` copies each service condition and *replaces* its ``headers``/``sourceLabels``
with the A/B condition's, dropping every other A/B field (``queryParams``, ``method``, ``uri``…): the canary then
gets more traffic than the A/B condition says, or traffic the service never matched. Here every field is kept:
maps (headers, queryParams, withoutHeaders, sourceLabels) are united key by key, other fields are taken from
whichever side sets them; where two sides ask for different values of one field (two URI prefixes, two values of
one header) the intersection cannot be written as one Istio condition, so it is a :class:`MatchConflict` that
validation reports and the router never writes. Pure: shared by ``canary_rules`` and the Istio router.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Fields whose value is a map of independent conditions, all of which must hold: united key by key.
MAP_FIELDS = ("headers", "queryParams", "withoutHeaders", "sourceLabels")
# Fields that only label the condition (stats, debugging): the A/B side's value wins.
LABEL_FIELDS = ("name", "statPrefix")


@dataclass(frozen=True)
class MatchConflict:
    """``field`` (``uri``, ``headers.x-tenant``…) of canary condition ``canary`` cannot be ANDed with service
    condition ``service``; ``why`` says how."""

    canary: int
    service: int
    field: str
    why: str


def _combine(
    canary: Mapping[str, Any], default: Mapping[str, Any], ci: int, si: int
) -> tuple[dict[str, Any], list[MatchConflict]]:
    merged: dict[str, Any] = copy.deepcopy(dict(default))
    conflicts: list[MatchConflict] = []
    for key, value in canary.items():
        if key == "ignoreUriCase":
            continue  # judged with uri below
        if key not in merged or key in LABEL_FIELDS:
            merged[key] = copy.deepcopy(value)
        elif key in MAP_FIELDS and isinstance(value, Mapping) and isinstance(merged[key], Mapping):
            united = dict(merged[key])
            for name, condition in value.items():
                if name in united and united[name] != condition:
                    conflicts.append(MatchConflict(ci, si, f"{key}.{name}", "the two ask for different values"))
                united[name] = copy.deepcopy(condition)
            merged[key] = united
        elif merged[key] != value:
            conflicts.append(MatchConflict(ci, si, key, "the two ask for different values"))
    # ignoreUriCase applies to the merged uri: it may not loosen (or tighten) a uri the other side wrote.
    own_case, other_case = bool(canary.get("ignoreUriCase", False)), bool(default.get("ignoreUriCase", False))
    if "ignoreUriCase" in canary or "ignoreUriCase" in default:
        if own_case != other_case and ("uri" in canary or "uri" in default):
            conflicts.append(
                MatchConflict(ci, si, "ignoreUriCase", "it would change how the other condition's uri matches")
            )
        merged["ignoreUriCase"] = own_case or other_case
    return merged, conflicts


def combine_matches(
    canary: Sequence[Mapping[str, Any]], defaults: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[MatchConflict]]:
    """Every canary condition ANDed with every default (OR of the products), and the pairs that cannot be ANDed.

    Without defaults the canary conditions are returned as written (nothing to narrow by)."""
    if not defaults:
        return [copy.deepcopy(dict(c)) for c in canary], []
    merged: list[dict[str, Any]] = []
    conflicts: list[MatchConflict] = []
    for ci, condition in enumerate(canary):
        for si, default in enumerate(defaults):
            item, found = _combine(condition, default, ci, si)
            merged.append(item)
            conflicts.extend(found)
    return merged, conflicts


def merge_match(canary: Sequence[Mapping[str, Any]], defaults: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """:func:`combine_matches`, for a spec that validation already accepted (so without conflicts)."""
    merged, conflicts = combine_matches(canary, defaults)
    if conflicts:
        first = conflicts[0]
        raise ValueError(
            f"match[{first.canary}].{first.field} cannot be ANDed with service.match[{first.service}]: {first.why}"
        )
    return merged
