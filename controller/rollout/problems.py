"""What validation reports: a field path and a plain-words message, plus the small checks several rules share.

Paths are dotted with list indices (``spec.analysis.metrics[0].thresholdRange``) so a user can find the field in
their YAML; messages say what is wrong and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from controller.rollout.durations import DurationError, parse_duration


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or, in ``warnings``, questionable) with a document, at a field path."""

    path: str
    message: str


def join(path: str, key: str | int) -> str:
    """Extend a field path with a mapping key or a list index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else empty: rules stay quiet where the schema already reported a wrong type."""
    return value if isinstance(value, Mapping) else {}


def items(value: Any) -> Sequence[Any]:
    """``value`` if it is a list, else empty (see :func:`mapping`)."""
    return value if isinstance(value, list) else []


def is_number(value: Any) -> TypeGuard[int | float]:
    """A YAML number (``true`` is a bool in YAML, not 1)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class Findings:
    """Problems and warnings collected while checking one document; at most one problem per field path.

    The schema check runs first, so a field with the wrong type is not also reported by a semantic rule.
    """

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def problem(self, path: str, message: str) -> None:
        if all(existing.path != path for existing in self.problems):
            self.problems.append(Problem(path, message))

    def warn(self, path: str, message: str) -> None:
        if Problem(path, message) not in self.warnings:
            self.warnings.append(Problem(path, message))

    def has_problem_at(self, path: str) -> bool:
        return any(existing.path == path for existing in self.problems)


def check_duration(value: Any, path: str, out: Findings, *, minimum_s: float = 0.0) -> float | None:
    """Report a duration that does not parse, is zero, or is below ``minimum_s``; return its seconds if usable."""
    if value is None:
        return None
    if not isinstance(value, str):
        out.problem(path, f"must be a duration such as 30s, 1m or 1h30m (got {value!r})")
        return None
    try:
        seconds = parse_duration(value)
    except DurationError as error:
        out.problem(path, str(error))
        return None
    if seconds <= 0:
        out.problem(path, f"must be longer than zero (got {value!r})")
        return None
    if seconds < minimum_s:
        out.problem(path, f"must be at least {minimum_s:g}s (got {value!r})")
        return None
    return seconds


def check_http_url(value: Any, path: str, out: Findings) -> None:
    """Report a URL that is not ``http(s)://host...``: a typo here only shows up mid-rollout otherwise."""
    if not isinstance(value, str):
        return
    try:
        parts = urlsplit(value)
        host = parts.hostname
        port = parts.port
    except ValueError:
        out.problem(path, f"must be an http:// or https:// URL with a host (got {value!r})")
        return
    if parts.scheme not in ("http", "https") or not host:
        out.problem(path, f"must be an http:// or https:// URL with a host (got {value!r})")
    elif port == 0:
        out.problem(path, f"port must be between 1 and 65535 (got {value!r})")


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_object_name(value: Any, path: str, out: Findings) -> None:
    """Kubernetes object names are DNS subdomains: lowercase letters, digits, '-' and '.', at most 253 chars."""
    if not isinstance(value, str) or not value:
        out.problem(path, "is required")
    elif len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        out.problem(
            path,
            f"must be a Kubernetes name: lowercase letters, digits, '-' and '.', starting and ending with a "
            f"letter or digit (got {value!r})",
        )


def check_service_name(value: Any, path: str, out: Findings) -> None:
    """Service names are DNS labels (Coalmine also appends ``-canary``/``-primary``, so keep room for that)."""
    if not isinstance(value, str):
        return
    if len(value) > 55 or not _DNS_LABEL.match(value):
        out.problem(
            path,
            f"must be a DNS label of at most 55 characters (room for the -primary suffix): lowercase letters, "
            f"digits and '-', starting with a letter (got {value!r})",
        )


def check_port_name(value: Any, path: str, out: Findings) -> None:
    """A named container port: at most 15 lowercase letters, digits and '-', with at least one letter."""
    if not isinstance(value, str):
        return
    if value.isdigit():
        out.problem(path, f"is a number written as a string; write it without quotes (got {value!r})")
    elif len(value) > 15 or not _PORT_NAME.match(value) or not any(ch.isalpha() for ch in value):
        out.problem(
            path,
            f"must be a port number or a container port name (at most 15 lowercase letters, digits and '-') "
            f"(got {value!r})",
        )
