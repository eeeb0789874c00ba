"""JSON to and from the wire: orjson where it gives what the standard library gives, the standard library otherwise.

Why: a busy operator parses and writes JSON all the time — every answer of the API server and of Prometheus, every
write, and the watch cache's copies — and at thousands of Canaries the ``json`` module was about a seventh of its
CPU. orjson does the same several times faster. Where the two differ, the standard library decides: what orjson
refuses to read (``NaN``, ``Infinity``, which Python's ``json`` accepts) is read by ``json``, and what it cannot
write (keys that are not strings, integers beyond 64 bits) is written by ``json``. Two differences are kept: a
``NaN`` float is written as ``null`` (``json`` writes ``NaN``, which is not JSON and which no Kubernetes API server
accepts), and an integer beyond 64 bits is read as a float (no Kubernetes or Prometheus field holds one: the API's
integers are 64-bit, and Prometheus sends sample values as strings).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "loads"]


def loads(data: bytes | bytearray | str) -> Any:
    """Parse a JSON document (raises ``ValueError`` for one that is not)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps(value: Any) -> bytes:
    """``value`` as compact JSON (no spaces), UTF-8 encoded."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()
