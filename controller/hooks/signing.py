"""HMAC-SHA256 request signing for webhooks and the generic notification webhook.

Why a timestamp: the signature covers ``"<timestamp>.<body>"``, so a captured request cannot be replayed later
than the receiver's tolerance window; the body alone would let anyone who saw one request resend it forever.
Both :func:`signature_headers` (sender) and :func:`verify_signature` (receiver) live here so they cannot drift.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Coalmine-Signature"
TIMESTAMP_HEADER = "X-Coalmine-Timestamp"
_SCHEME = "sha256="


def sign(body: bytes, secret: bytes, timestamp: int) -> str:
    """The header value ``sha256=<hex>`` for ``body`` sent at ``timestamp`` (unix seconds)."""
    message = str(timestamp).encode("ascii") + b"." + body
    return _SCHEME + hmac.new(secret, message, hashlib.sha256).hexdigest()


def signature_headers(body: bytes, secret: bytes, *, now: float | None = None) -> dict[str, str]:
    """The two headers a signed request carries; ``now`` defaults to the wall clock (receivers compare to theirs)."""
    timestamp = int(time.time() if now is None else now)
    return {SIGNATURE_HEADER: sign(body, secret, timestamp), TIMESTAMP_HEADER: str(timestamp)}


def verify_signature(
    body: bytes,
    headers: Mapping[str, str],
    secret: bytes,
    tolerance_s: float = 300,
    *,
    now: float | None = None,
) -> bool:
    """True if ``headers`` carry a valid signature of ``body`` made within ``tolerance_s`` of ``now``.

    Header names are matched case-insensitively (HTTP servers and proxies normalise them differently). The
    comparison is constant-time. A missing or malformed header, a stale or future timestamp, or a signature made
    with another secret or over another body all give False.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    signature = lowered.get(SIGNATURE_HEADER.lower())
    raw_timestamp = lowered.get(TIMESTAMP_HEADER.lower())
    if signature is None or raw_timestamp is None or not raw_timestamp.strip().isdigit():
        return False
    timestamp = int(raw_timestamp.strip())
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(body, secret, timestamp), signature.strip())
