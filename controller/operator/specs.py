"""Parse a rollout's spec once per change, not once per tick.

Validating a Canary against its schema and rules costs a few milliseconds; at a tick every 2 s for hundreds of
Canaries that was the operator's largest CPU cost (the scale benchmark, ``bench/scale.py``), although specs change
rarely. The result — the typed spec or the :class:`InvalidSpecError` — is kept per object and reused while the
spec is equal to the one parsed (compared as data, kind and apiVersion included), not while
``metadata.generation`` is: it is exact whatever the API server does with generations, and comparing is far
cheaper than validating (and than serialising, which an earlier version did on every tick).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, TypeVar

from controller.operator.context import OperatorContext
from controller.rollout.kinds import Strategy
from controller.rollout.provider_rules import with_default_provider
from controller.rollout.validation import InvalidSpecError

T = TypeVar("T")


def parse_cached(ctx: OperatorContext, strategy: Strategy[T], document: Mapping[str, Any]) -> T:
    """``strategy.parse(document)``, reused while the object's kind and spec are unchanged."""
    document = with_default_provider(document, ctx.config.default_provider)
    uid = _identity(strategy, document)
    key = (document.get("kind"), document.get("apiVersion"), document.get("spec"))
    cached = ctx.parsed_specs.get(uid)
    if cached is not None and cached[0] == key:
        result = cached[1]
    else:
        try:
            result = strategy.parse(document)
        except InvalidSpecError as error:
            result = error
        ctx.parsed_specs[uid] = (copy.deepcopy(key), result)  # our own copy: nothing can change it underneath
    if isinstance(result, InvalidSpecError):
        raise result
    return result  # type: ignore[no-any-return]


def forget_spec(ctx: OperatorContext, strategy: Strategy[Any], document: Mapping[str, Any]) -> None:
    """Drop the cached spec of an object that is gone."""
    ctx.parsed_specs.pop(_identity(strategy, document), None)


def _identity(strategy: Strategy[Any], document: Mapping[str, Any]) -> str:
    meta = document.get("metadata") or {}
    return f"{strategy.kind}/{meta.get('namespace', '')}/{meta.get('name', '')}/{meta.get('uid', '')}"
