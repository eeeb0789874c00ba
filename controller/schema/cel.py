"""Evaluate a CRD's ``x-kubernetes-validations`` rules the way the Kubernetes API server does, with cel-python.

cel-python implements the CEL language; Kubernetes adds its own library on top and parses durations with Go's
``time.ParseDuration``. The only such difference the Istio schemas Coalmine ships depend on is ``duration()``:
cel-python also accepts days (``1d``), Go does not, so :func:`go_duration_ns` replaces it. A rule that calls any
function outside CEL's standard set and :data:`KUBERNETES_FUNCTIONS` is refused at compile time
(:class:`UnsupportedRule`), so an Istio or Gateway API upgrade that starts using one fails a test instead of
passing every value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from typing import Any

import celpy
import lark
from celpy import adapter, celtypes
from celpy.evaluation import CELEvalError, base_functions

_UNIT_NS = {
    "ns": Decimal(1),
    "us": Decimal(1_000),
    "µs": Decimal(1_000),  # U+00B5 micro sign
    "μs": Decimal(1_000),  # U+03BC greek mu
    "ms": Decimal(1_000_000),
    "s": Decimal(1_000_000_000),
    "m": Decimal(60_000_000_000),
    "h": Decimal(3_600_000_000_000),
}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter", "has"})


class UnsupportedRule(ValueError):
    """A CEL rule uses a function Coalmine cannot evaluate exactly as Kubernetes does."""


def go_duration_ns(text: str) -> int | None:
    """Nanoseconds of ``text`` parsed like Go's ``time.ParseDuration`` (``1h30m``, ``1.5s``, ``0``), or ``None``."""
    body = text[1:] if text[:1] in "+-" else text
    sign = -1 if text[:1] == "-" else 1
    if body == "0":
        return 0
    if not body:
        return None
    total = Decimal(0)
    position = 0
    while position < len(body):
        part = _PART.match(body, position)
        if part is None:
            return None
        total += Decimal(part.group(1)) * _UNIT_NS[part.group(2)]
        position = part.end()
    return sign * int(total)


def _duration(value: Any) -> Any:
    if isinstance(value, celtypes.DurationType):
        return value
    if not isinstance(value, str):
        return CELEvalError("duration() needs a string", TypeError, (value,))
    nanoseconds = go_duration_ns(str(value))
    if nanoseconds is None:
        return CELEvalError(f"invalid duration {str(value)!r}", ValueError, (value,))
    seconds, nanos = divmod(nanoseconds, 1_000_000_000)
    return celtypes.DurationType(seconds=seconds, nanos=nanos)


def _split(text: Any, separator: Any, limit: Any = None) -> Any:
    parts = str(text).split(str(separator)) if limit is None or int(limit) < 0 else None
    if parts is None:
        parts = [] if int(limit) == 0 else str(text).split(str(separator), int(limit) - 1)
    return celtypes.ListType([celtypes.StringType(part) for part in parts])


def _substring(text: Any, start: Any, end: Any = None) -> Any:
    value = str(text)
    stop = len(value) if end is None else int(end)
    if not 0 <= int(start) <= stop <= len(value):
        return CELEvalError(f"substring({start}, {end}) out of range", IndexError, (text,))
    return celtypes.StringType(value[int(start) : stop])


def _join(items: Any, separator: Any = "") -> Any:
    return celtypes.StringType(str(separator).join(str(item) for item in items))


STRINGS_LIBRARY: dict[str, Callable[..., Any]] = {
    "split": _split,
    "substring": _substring,
    "join": _join,
    "lowerAscii": lambda text: celtypes.StringType(str(text).lower()),
    "upperAscii": lambda text: celtypes.StringType(str(text).upper()),
    "trim": lambda text: celtypes.StringType(str(text).strip()),
    "indexOf": lambda text, sub: celtypes.IntType(str(text).find(str(sub))),
    "lastIndexOf": lambda text, sub: celtypes.IntType(str(text).rfind(str(sub))),
}
"""The Kubernetes CEL strings-library functions cel-python lacks (``ext.Strings``, version 2 semantics)."""


KUBERNETES_FUNCTIONS: dict[str, Callable[..., Any]] = {"duration": _duration, **STRINGS_LIBRARY}
"""Functions whose Kubernetes behaviour differs from (or is missing in) cel-python, by name: Go's ``duration()``
and the strings library's functions the shipped CRDs call."""


def _called(tree: lark.Tree[Any]) -> set[str]:
    names: set[str] = set()
    for node in tree.iter_subtrees():
        if node.data == "ident_arg":
            names.add(str(node.children[0]))
        elif node.data == "member_dot_arg":
            names.add(str(node.children[1]))
    return names


@cache
def compile_rule(rule: str) -> celpy.Runner:
    """The compiled program of one rule; :class:`UnsupportedRule` if it calls a function we do not provide."""
    environment = celpy.Environment()
    tree = environment.compile(rule)
    unknown = _called(tree) - set(base_functions) - set(KUBERNETES_FUNCTIONS) - _MACROS
    if unknown:
        raise UnsupportedRule(f"CEL rule {rule!r} calls {', '.join(sorted(unknown))}, which Coalmine does not provide")
    return environment.program(tree, functions=KUBERNETES_FUNCTIONS)


def rule_holds(rule: str, value: Any) -> bool:
    """Whether ``rule`` is true with ``self`` = ``value`` (a JSON value); an evaluation error counts as false, as
    it makes the API server refuse the object."""
    try:
        result = compile_rule(rule).evaluate({"self": adapter.json_to_cel(value)})
    except CELEvalError:
        return False
    return isinstance(result, celtypes.BoolType) and bool(result)
