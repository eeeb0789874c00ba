"""A spec is parsed once per change, not once per tick (controller/operator/specs.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fakekube import FakeKube

from controller.operator.context import OperatorConfig, OperatorContext
from controller.operator.specs import forget_spec, parse_cached
from controller.rollout.validation import InvalidSpecError, Problem


class _Counting:
    """A strategy whose parse counts its calls; a spec with ``bad`` is invalid."""

    kind = "Canary"

    def __init__(self) -> None:
        self.parsed = 0

    def parse(self, document: Any) -> dict[str, Any]:
        self.parsed += 1
        if document["spec"].get("bad"):
            raise InvalidSpecError((Problem("spec.bad", "must not be set"),))
        return dict(document["spec"])


def _canary(**spec: Any) -> dict[str, Any]:
    meta = {"name": "app", "namespace": "ns", "uid": "u-1"}
    return {"kind": "Canary", "apiVersion": "coalmine.dev/v1alpha1", "metadata": meta, "spec": spec}


def test_an_unchanged_spec_is_parsed_once_and_any_change_is_parsed_again() -> None:
    ctx = OperatorContext(config=OperatorConfig(), api=FakeKube())
    strategy = _Counting()
    document = _canary(interval="10s")
    for _ in range(5):
        assert parse_cached(ctx, strategy, copy.deepcopy(document)) == {"interval": "10s"}  # type: ignore[arg-type]
    assert strategy.parsed == 1

    document["spec"]["interval"] = "20s"  # changed in place: the cache kept its own copy, so it sees the change
    assert parse_cached(ctx, strategy, document) == {"interval": "20s"}  # type: ignore[arg-type]
    assert strategy.parsed == 2

    document["spec"]["bad"] = True
    for _ in range(2):  # an invalid spec stays invalid without being validated again
        with pytest.raises(InvalidSpecError):
            parse_cached(ctx, strategy, document)  # type: ignore[arg-type]
    assert strategy.parsed == 3

    forget_spec(ctx, strategy, document)  # type: ignore[arg-type]
    del document["spec"]["bad"]
    parse_cached(ctx, strategy, document)  # type: ignore[arg-type]
    assert strategy.parsed == 4
