"""When to try an HTTP call again, and how long to wait: shared by webhooks and notifications.

The rule copies hashicorp/go-retryablehttp's default policy, which Flagger's webhook client uses: retry transport
errors (refused, reset, timed out), 429 and 5xx except 501; never retry another 4xx, because that is an answer
(a closed gate says 403 and means it). The backoff is short and capped so a rollout tick stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff ``base_s × 2^attempt``, capped at ``max_s`` (attempt counts from 0)."""

    base_s: float = 0.5
    max_s: float = 4.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_s, self.base_s * (2**attempt)))


DEFAULT_RETRY = RetryPolicy()


def is_retryable_status(status: int) -> bool:
    """429 and 5xx except 501 (Not Implemented will not change by asking again)."""
    return status == 429 or (status >= 500 and status != 501)
