"""HMAC-SHA256 request signing for webhooks and the generic notification webhook, and replay rejection.

Why a timestamp: the signature covers the timestamp, so a captured request cannot be replayed later than the
receiver's tolerance window. Why a delivery id as well: within that window the timestamp alone does not stop a
replay (an eavesdropper resends the request a second later), so every request carries a fresh random id, signed
with it, and a receiver that remembers the ids it accepted during the window (:class:`ReplayGuard`) refuses the
same request twice. The signed message is ``"<timestamp>.<delivery id>.<body>"``.

Both :func:`signature_headers` (sender) and :func:`verify_signature` (receiver) live here so they cannot drift.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Coalmine-Signature"
TIMESTAMP_HEADER = "X-Coalmine-Timestamp"
DELIVERY_HEADER = "X-Coalmine-Delivery"
_SCHEME = "sha256="
_MAX_DELIVERY_ID = 128


def sign(body: bytes, secret: bytes, timestamp: int, delivery: str) -> str:
    """The header value ``sha256=<hex>`` for ``body`` sent at ``timestamp`` (unix seconds) as ``delivery``."""
    message = f"{timestamp}.{delivery}.".encode("ascii") + body
    return _SCHEME + hmac.new(secret, message, hashlib.sha256).hexdigest()


def signature_headers(
    body: bytes, secret: bytes, *, now: float | None = None, delivery: str | None = None
) -> dict[str, str]:
    """The three headers a signed request carries. ``now`` defaults to the wall clock (receivers compare to theirs);
    ``delivery`` to a fresh random id, so every attempt — a retry too — is a request of its own."""
    timestamp = int(time.time() if now is None else now)
    delivery_id = delivery if delivery is not None else secrets.token_hex(16)
    return {
        SIGNATURE_HEADER: sign(body, secret, timestamp, delivery_id),
        TIMESTAMP_HEADER: str(timestamp),
        DELIVERY_HEADER: delivery_id,
    }


class ReplayGuard:
    """The delivery ids a receiver accepted within the tolerance window; a second request with one is a replay.

    Memory is bounded: ids older than the window are forgotten (a request that old fails the timestamp check
    anyway), and when ``max_entries`` ids are all still inside the window, new requests are refused rather than
    an old id forgotten early — failing closed, since forgetting would let that id be replayed.
    """

    def __init__(self, tolerance_s: float = 300, max_entries: int = 100_000) -> None:
        self.tolerance_s = tolerance_s
        self.max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, delivery: str, now: float) -> bool:
        """Remember ``delivery``; False when it was already seen within the window (or the guard is full)."""
        with self._lock:
            horizon = now - 2 * self.tolerance_s  # timestamps may be up to tolerance_s in the future too
            while self._seen and next(iter(self._seen.values())) < horizon:
                self._seen.popitem(last=False)
            if delivery in self._seen or len(self._seen) >= self.max_entries:
                return False
            self._seen[delivery] = now
            return True


def verify_signature(
    body: bytes,
    headers: Mapping[str, str],
    secret: bytes,
    tolerance_s: float = 300,
    *,
    now: float | None = None,
    replay_guard: ReplayGuard | None = None,
) -> bool:
    """True if ``headers`` carry a valid signature of ``body`` made within ``tolerance_s`` of ``now`` — and, with a
    ``replay_guard``, if this delivery id was not accepted before.

    Header names are matched case-insensitively (HTTP servers and proxies normalise them differently). The
    comparison is constant-time. A missing or malformed header, a stale or future timestamp, a signature made
    with another secret or over another body or id, or a replay all give False. The guard remembers an id only
    once its signature verified, so forged requests cannot fill it.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    signature = lowered.get(SIGNATURE_HEADER.lower())
    raw_timestamp = lowered.get(TIMESTAMP_HEADER.lower())
    delivery = (lowered.get(DELIVERY_HEADER.lower()) or "").strip()
    if signature is None or raw_timestamp is None or not raw_timestamp.strip().isdigit():
        return False
    if not delivery or len(delivery) > _MAX_DELIVERY_ID or not delivery.isascii():
        return False
    timestamp = int(raw_timestamp.strip())
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    if not hmac.compare_digest(sign(body, secret, timestamp, delivery), signature.strip()):
        return False
    return replay_guard is None or replay_guard.first_time(delivery, current)
