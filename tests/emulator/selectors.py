"""Label and field selectors, parsed the way the API server parses ``labelSelector``/``fieldSelector``.

An operator that shards by label (``coalmine run`` with a label selector) or a client that watches one object by
``fieldSelector=metadata.name=x`` must see only the matching objects, or tests would pass against an emulator
that returns everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Operator(StrEnum):
    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"


class SelectorError(ValueError):
    """An unparseable selector; the API server answers 400 Bad Request."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case Operator.EQUALS:
                return present and value in self.values
            case Operator.NOT_EQUALS:
                return not present or value not in self.values
            case Operator.IN:
                return present and value in self.values
            case Operator.NOT_IN:
                return not present or value not in self.values
            case Operator.EXISTS:
                return present
            case Operator.DOES_NOT_EXIST:
                return not present


_SET_RE = re.compile(r"^(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s+\((?P<values>[^()]*)\)$")
_EQ_RE = re.compile(r"^(?P<key>[^\s!=()]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=()]*)$")
_KEY_RE = re.compile(r"^(?P<neg>!?)\s*(?P<key>[^\s!=()]+)$")


def _split(text: str) -> list[str]:
    """Split on commas that are not inside a ``( … )`` value set."""
    parts: list[str] = []
    depth, start = 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse ``app=x,tier in (a,b),!canary,env!=prod`` into requirements (all must hold)."""
    requirements: list[Requirement] = []
    for part in _split(text or ""):
        if match := _SET_RE.match(part):
            values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
            requirements.append(Requirement(match["key"], Operator(match["op"]), values))
        elif match := _EQ_RE.match(part):
            op = Operator.NOT_EQUALS if match["op"] == "!=" else Operator.EQUALS
            requirements.append(Requirement(match["key"], op, frozenset({match["value"]})))
        elif match := _KEY_RE.match(part):
            op = Operator.DOES_NOT_EXIST if match["neg"] else Operator.EXISTS
            requirements.append(Requirement(match["key"], op))
        else:
            raise SelectorError(f"unable to parse requirement: {part!r}")
    return tuple(requirements)


def parse_field_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse ``metadata.name=x,involvedObject.kind!=Pod`` (fields support only =, == and !=)."""
    requirements: list[Requirement] = []
    for part in _split(text or ""):
        match = _EQ_RE.match(part)
        if match is None:
            raise SelectorError(f"invalid field selector: {part!r}")
        op = Operator.NOT_EQUALS if match["op"] == "!=" else Operator.EQUALS
        requirements.append(Requirement(match["key"], op, frozenset({match["value"]})))
    return tuple(requirements)


def labels_match(requirements: tuple[Requirement, ...], obj: Mapping[str, Any]) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(requirement.matches(labels) for requirement in requirements)


def fields_match(requirements: tuple[Requirement, ...], obj: Mapping[str, Any]) -> bool:
    """Compare dotted field paths as strings, as the server does (a missing field is the empty string)."""
    values: dict[str, str] = {}
    for requirement in requirements:
        node: Any = obj
        for part in requirement.key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        values[requirement.key] = "" if node is None else str(node).lower() if isinstance(node, bool) else str(node)
    return all(requirement.matches(values) for requirement in requirements)
