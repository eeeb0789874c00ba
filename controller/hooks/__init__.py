"""Webhooks and gates (Flagger-compatible): build the payload, sign it, call the hooks, combine the answers.

The operator calls :func:`run_hooks` once per hook type the engine asks for and hands the
:class:`~controller.rollout.observations.HookOutcome` back in ``Observations.hooks``. See ``docs/webhooks.md``.
"""

from controller.hooks.payload import EventInfo, HookPayload, hook_phase, payload_body, payload_dict
from controller.hooks.retry import DEFAULT_RETRY, RetryPolicy, is_retryable_status
from controller.hooks.runner import MAX_SUCCESS_STATUS, HookResult, call_hook, combine, run_hooks
from controller.hooks.signing import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ReplayGuard,
    sign,
    signature_headers,
    verify_signature,
)

__all__ = [
    "DEFAULT_RETRY",
    "DELIVERY_HEADER",
    "MAX_SUCCESS_STATUS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "EventInfo",
    "HookPayload",
    "HookResult",
    "ReplayGuard",
    "RetryPolicy",
    "call_hook",
    "combine",
    "hook_phase",
    "is_retryable_status",
    "payload_body",
    "payload_dict",
    "run_hooks",
    "sign",
    "signature_headers",
    "verify_signature",
]
