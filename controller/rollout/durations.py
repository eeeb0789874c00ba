"""Kubernetes/Go-style durations (``30s``, ``1m``, ``1h30m``, ``250ms``) as used in Flagger specs.

Pure parsing, shared by validation, the spec model and the CLI, so every part of Coalmine reads a duration the same way.
"""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$")


class DurationError(ValueError):
    """A string is not a duration such as ``30s``, ``1m`` or ``1h30m``."""


def parse_duration(text: str) -> float:
    """Return the duration in seconds; raise :class:`DurationError` with what is allowed.

    A bare number is rejected on purpose: Flagger treats ``"60"`` as invalid and guessing the unit would hide mistakes.
    """
    if not isinstance(text, str) or not _WHOLE.match(text.strip()):
        raise DurationError(f"{text!r} is not a duration; use a number with a unit ms, s, m or h, e.g. 30s, 1m, 1h30m")
    return sum(float(value) * _UNIT_SECONDS[unit] for value, unit in _PART.findall(text.strip()))


def format_duration(seconds: float) -> str:
    """Render seconds the way people write them (``90`` → ``1m30s``), for messages and timelines."""
    total = round(seconds)
    if total <= 0:
        return "0s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts)
