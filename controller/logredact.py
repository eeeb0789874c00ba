"""No secret in the operator's logs: a logging filter that masks credentials in every record, whoever logs it.

Credentials reach log lines by paths no one reviews: httpx logs every request's full URL at INFO (a Slack, Teams
or Discord incoming-webhook URL *is* the credential), an exception quotes the URL it failed on, a library echoes a
header. Masking at each call site would miss the next one, so :func:`install` adds :class:`RedactingFilter` to
the root logger's handlers, and every record is cleaned on its way out, by three rules:

1. **Known secret values** — whatever the operator decoded from a Secret (tokens, passwords, webhook URLs), the
   webhook signing key and the default alert URL — are registered with :func:`remember_secret` and replaced by
   ``***`` wherever they appear.
2. **Webhook URLs** of the chat services Coalmine posts to keep only scheme and host (``https://hooks.slack.com/***``),
   and any URL's ``user:password@`` becomes ``***@``: both are credentials even when never registered.
3. **Authorization values** (``Bearer …``, ``Basic …``) and ``token=``/``key=``/``sig=``-like query parameters
   are masked.

The filter is cheap when there is nothing to mask (one regex search per record). It lives in ``controller`` because
only the operator process configures logging; ``analysis`` never logs credentials.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

MASK = "***"
_MIN_SECRET_LENGTH = 6  # shorter values ("true", "admin") would mask ordinary words in every line

_WEBHOOK_HOSTS = (
    r"hooks\.slack\.com",
    r"[a-z0-9-]+\.webhook\.office\.com",
    r"outlook\.office\.com",
    r"(?:www\.|ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks",
    r"chat\.googleapis\.com",
)
_WEBHOOK_URL = re.compile(r"(https?://(?:" + "|".join(_WEBHOOK_HOSTS) + r"))[^\s'\"<>)\]]*", re.IGNORECASE)
_USERINFO = re.compile(r"(?<=://)[^/\s@'\"]+@")
_AUTHORIZATION = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_SECRET_PARAM = re.compile(
    r"([?&](?:token|access_token|api[_-]?key|key|sig|signature|secret|password|auth)=)[^&\s'\"]+", re.IGNORECASE
)
_QUICK = re.compile(r"://|bearer|basic|token|key=|sig|secret|password|auth", re.IGNORECASE)


class _Secrets:
    """The registered secret values, longest first so a value containing another is masked whole."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        fresh = {value.strip() for value in values if len(value.strip()) >= _MIN_SECRET_LENGTH}
        with self._lock:
            if fresh <= self._values:
                return
            self._values |= fresh
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(value) for value in ordered))

    def pattern(self) -> re.Pattern[str] | None:
        return self._pattern

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None


_SECRETS = _Secrets()


def remember_secret(*values: str | bytes | None) -> None:
    """Mask these values in every log line from now on (Secrets' data, signing keys, webhook URLs)."""
    texts = [value.decode("utf-8", "replace") if isinstance(value, bytes) else value for value in values if value]
    _SECRETS.add(texts)


def forget_secrets() -> None:
    """Drop every registered value (tests)."""
    _SECRETS.clear()


def redact(text: str) -> str:
    """``text`` with every credential the module doc lists replaced by ``***``."""
    pattern = _SECRETS.pattern()
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if not _QUICK.search(text):
        return text
    text = _WEBHOOK_URL.sub(lambda match: f"{match.group(1)}/{MASK}", text)
    text = _USERINFO.sub(MASK + "@", text)
    text = _AUTHORIZATION.sub(lambda match: f"{match.group(1)} {MASK}", text)
    return _SECRET_PARAM.sub(lambda match: match.group(1) + MASK, text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and its formatted exception) with :func:`redact`; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let the handler report it as logging does
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Add the filter to every handler of ``logger`` (the root logger by default); idempotent.

    On handlers, not on the logger: a logger's filters do not see records propagated from child loggers such as
    ``httpx``, while a handler sees every record it writes.
    """
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
            handler.addFilter(RedactingFilter())
