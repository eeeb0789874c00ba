"""Who may use a credential, and where it may be sent.

A MetricTemplate or AlertProvider with a ``secretRef`` carries its team's credential: a Prometheus bearer token or
password, a Slack incoming-webhook URL. Two rules keep it that team's:

1. **It goes only to the address configured beside it.** A MetricTemplate's token is sent to that template's own
   ``spec.provider.address``, never to the referring Canary's ``spec.metricsServer`` or the operator's default: a
   Canary in another namespace could otherwise point ``metricsServer`` at a server it runs and read the token from
   the ``Authorization`` header. A template with a ``secretRef`` and no address is refused.
2. **It is used only from its own namespace, unless shared on purpose.** The Secret is always read from the
   referring object's namespace (the MetricTemplate's or AlertProvider's, never the Canary's), and a Canary in
   another namespace may use such an object only when the object says so with the annotation
   ``coalmine.dev/share-credentials-with`` (a comma-separated list of namespaces, or ``*``). Objects without a
   ``secretRef`` hold nothing secret and are shared freely, as in Flagger (templates in a common namespace).

Pure functions of the objects; the operator reads them and the Secret (:mod:`controller.operator.looks`,
:mod:`controller.operator.announce`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from controller.logredact import remember_secret

SHARE_ANNOTATION = "coalmine.dev/share-credentials-with"


class CredentialRefused(ValueError):
    """A credential would leave its namespace or go to another address; the message says how to allow it."""


def decode_secret(secret: Mapping[str, Any] | None) -> dict[str, str]:
    """A Secret's ``data`` (base64) and ``stringData`` as plain strings; undecodable data raises ValueError."""
    if not secret:
        return {}
    try:
        decoded = {
            key: base64.b64decode(value, validate=True).decode("utf-8", "replace")
            for key, value in (secret.get("data") or {}).items()
        }
    except (binascii.Error, TypeError) as error:
        raise ValueError(f"data is not base64: {error}") from error
    decoded.update({key: str(value) for key, value in (secret.get("stringData") or {}).items()})
    remember_secret(*decoded.values())  # whatever a Secret holds is masked in every log line from now on
    return decoded


def shared_with(obj: Mapping[str, Any]) -> frozenset[str]:
    """The namespaces ``obj``'s annotation shares its credential with (``*`` = every namespace)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(SHARE_ANNOTATION)
    if not isinstance(value, str):
        return frozenset()
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def check_credential_use(obj: Mapping[str, Any], kind: str, owner_namespace: str, user_namespace: str) -> None:
    """Refuse a Canary in ``user_namespace`` using ``obj`` (a ``kind`` in ``owner_namespace``) that has a secretRef,
    unless the two namespaces are the same or the object shares its credential with the Canary's namespace."""
    if owner_namespace == user_namespace or not _secret_name(obj):
        return
    allowed = shared_with(obj)
    if "*" in allowed or user_namespace in allowed:
        return
    name = (obj.get("metadata") or {}).get("name", "")
    raise CredentialRefused(
        f"{kind} {owner_namespace}/{name} has a secretRef and is not shared with namespace {user_namespace!r}: "
        f"its owners may allow it with the annotation {SHARE_ANNOTATION}: {user_namespace} (or '*')"
    )


def template_address(template: Mapping[str, Any], fallback: str) -> str:
    """Where a MetricTemplate's queries go: its own ``spec.provider.address``, else ``fallback`` (the Canary's or the
    operator's Prometheus) — but a template with credentials never falls back (rule 1 of the module doc)."""
    provider = (template.get("spec") or {}).get("provider") or {}
    address = provider.get("address")
    if isinstance(address, str) and address:
        return address
    if _secret_name(template):
        name = (template.get("metadata") or {}).get("name", "")
        raise CredentialRefused(
            f"MetricTemplate {name}: spec.provider.secretRef is set but spec.provider.address is not; its "
            "credentials are only sent to the address configured beside them, never to a Canary's metricsServer"
        )
    return fallback


def _secret_name(obj: Mapping[str, Any]) -> str:
    spec = obj.get("spec") or {}
    ref = spec.get("secretRef") or (spec.get("provider") or {}).get("secretRef") or {}
    name = ref.get("name") if isinstance(ref, Mapping) else None
    return name if isinstance(name, str) else ""
