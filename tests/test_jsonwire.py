"""JSON on the wire (controller.providers.jsonwire): orjson's speed with the standard library's answers."""

from __future__ import annotations

import json
import math

import pytest

from controller.providers import jsonwire


def test_documents_round_trip_compactly_and_read_back_as_the_standard_library_reads_them() -> None:
    document = {"kind": "Canary", "spec": {"weights": [10, 20.5], "name": "café", "on": True, "none": None}}
    written = jsonwire.dumps(document)
    assert b" " not in written.replace(b"caf\xc3\xa9", b"")  # compact: no spaces after separators
    assert jsonwire.loads(written) == json.loads(written) == document
    assert jsonwire.loads(written.decode()) == document  # text as well as bytes


def test_what_only_the_standard_library_reads_is_still_read() -> None:
    assert math.isnan(jsonwire.loads(b'{"v": NaN}')["v"])
    assert jsonwire.loads(b"[Infinity]") == [math.inf]


def test_an_integer_beyond_64_bits_is_read_as_a_float_as_documented() -> None:
    assert jsonwire.loads(b"[123456789012345678901234567890]") == [1.2345678901234568e29]


def test_what_only_the_standard_library_writes_is_still_written() -> None:
    assert json.loads(jsonwire.dumps({1: "a"})) == {"1": "a"}  # a key that is not a string
    assert json.loads(jsonwire.dumps([2**70])) == [2**70]


def test_nan_is_written_as_null_since_no_api_server_accepts_nan() -> None:
    assert jsonwire.dumps({"v": math.nan}) == b'{"v":null}'


def test_a_document_that_is_not_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        jsonwire.loads(b"{not json")
