"""The manual-request annotation: what the plugin writes is what the operator reads; anything else is no request."""

from __future__ import annotations

import json

import pytest

from controller.rollout.phases import ManualAction
from controller.rollout.request_codec import (
    REQUEST_ANNOTATION,
    decode_request,
    encode_request,
    request_patch,
    request_sender,
)


@pytest.mark.parametrize("action", list(ManualAction))
def test_what_is_encoded_decodes_to_the_same_request(action: ManualAction) -> None:
    request_id, text = encode_request(action, "alice@example", 1_764_000_000.25)
    request = decode_request(text)
    assert request is not None
    assert (request.id, request.action, request.at) == (request_id, action, 1_764_000_000.25)
    assert request_sender(text) == "alice@example"
    assert json.loads(text)["at"] == "2025-11-24T16:00:00.250000Z"


def test_every_request_gets_a_new_id() -> None:
    ids = {encode_request(ManualAction.PROMOTE, "", 0.0)[0] for _ in range(50)}
    assert len(ids) == 50


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "promote",
        "{not json",
        "[]",
        '"promote"',
        '{"action": "promote"}',
        '{"id": "", "action": "promote"}',
        '{"id": 7, "action": "promote"}',
        '{"id": "abc", "action": "rollback"}',
        '{"id": "abc", "action": null}',
    ],
)
def test_garbage_is_not_a_request(text: str | None) -> None:
    assert decode_request(text) is None


def test_an_unreadable_time_keeps_the_request() -> None:
    request = decode_request('{"id": "abc", "action": "abort", "at": "yesterday"}')
    assert request is not None and request.action is ManualAction.ABORT and request.at == 0.0


def test_the_patch_touches_only_the_annotation() -> None:
    assert request_patch("x") == {"metadata": {"annotations": {REQUEST_ANNOTATION: "x"}}}
    assert REQUEST_ANNOTATION == "coalmine.dev/request"
