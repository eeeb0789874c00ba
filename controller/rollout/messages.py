"""Bounded human messages: ``status.message``, condition messages and Event notes stay readable and storable.

A failing Prometheus query used to land in ``status.message`` once per metric that ran it — each copy carrying the
query and the server's answer — and a real API server refuses an ``events.k8s.io/v1`` Event whose ``note`` is over
1 KB. So a message keeps one copy of each distinct failure (later copies say "same error") and is cut to a byte
limit at a character boundary, saying how much was cut. The full text goes to the operator's log where it is cut.
"""

from __future__ import annotations

MESSAGE_LIMIT = 1024
"""Bytes (UTF-8) of ``status.message`` and of an Event's ``note`` — the API server's limit for the latter."""

_FAILED = "failed: "
_SAME = "(same error as above)"


def _dedupe(text: str) -> str:
    """ "a: query failed: E; b: query failed: E" → "a: query failed: E; b: query failed: (same error as above)"."""
    parts = text.split("; ")
    seen: set[str] = set()
    out = []
    for part in parts:
        head, sep, error = part.partition(_FAILED)
        if sep and len(error) > len(_SAME):
            if error in seen:
                part = f"{head}{sep}{_SAME}"
            seen.add(error)
        out.append(part)
    return "; ".join(out)


def bounded(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` with repeated failures said once, at most ``limit`` UTF-8 bytes (cut text ends with a note)."""
    text = _dedupe(text)
    raw = text.encode()
    if len(raw) <= limit:
        return text
    suffix = f" … ({len(raw):,} bytes; the full text is in the operator log)"
    keep = raw[: max(0, limit - len(suffix.encode()))].decode(errors="ignore")
    return keep + suffix


def is_cut(text: str, limit: int = MESSAGE_LIMIT) -> bool:
    """True if :func:`bounded` would shorten ``text`` (the caller then logs the full text)."""
    return len(_dedupe(text).encode()) > limit


__all__ = ["MESSAGE_LIMIT", "bounded", "is_cut"]
