"""Where and how to post: an AlertProvider spec (plus its Secret) or the operator's default, as one record.

Secret keys follow Flagger: ``address`` (the incoming-webhook URL — a credential in itself, so it belongs in a
Secret), and optionally ``proxy``, ``token``, ``username``, ``channel``; a key in the Secret overrides the same
field in the spec. ``token`` means a bearer token for ``slack`` (Web API ``chat.postMessage``) and the HMAC signing
key for ``webhook``; other types ignore it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit


class ProviderType(StrEnum):
    """``AlertProvider.spec.type``."""

    SLACK = "slack"
    MSTEAMS = "msteams"
    DISCORD = "discord"
    GCHAT = "gchat"
    ROCKET = "rocket"
    WEBHOOK = "webhook"


class ProviderConfigError(ValueError):
    """The provider cannot be used: unknown type, no address, or an address that is not an http(s) URL."""


DEFAULT_USERNAME = "coalmine"


@dataclass(frozen=True)
class ProviderConfig:
    """A usable provider. ``address`` and ``token`` are credentials: they never appear in ``repr`` (or logs)."""

    type: ProviderType
    address: str = field(repr=False)
    channel: str = ""
    username: str = DEFAULT_USERNAME
    token: str = field(default="", repr=False)
    proxy: str | None = field(default=None, repr=False)

    @classmethod
    def from_flags(cls, url: str | None, type: str = "slack") -> ProviderConfig | None:
        """The operator's global default (``--default-alert-url``, ``--default-alert-type``); None without a URL.

        Like Flagger's ``-slack-url``, it receives the messages of Canaries that list no ``alerts`` of their own.
        """
        if not url:
            return None
        return _build(type, url, channel="", username=DEFAULT_USERNAME, token="", proxy=None)


def _text(value: Any) -> str:
    """Secret values arrive as bytes or str; ``echo`` into a Secret leaves a trailing newline — drop it."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return str(value).strip()


def _check_url(value: str, what: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ProviderConfigError(f"{what} must be an http(s) URL")


def _build(type: str, address: str, *, channel: str, username: str, token: str, proxy: str | None) -> ProviderConfig:
    try:
        provider_type = ProviderType(type)
    except ValueError:
        known = ", ".join(member.value for member in ProviderType)
        raise ProviderConfigError(f"unknown provider type {type!r} (known: {known})") from None
    if not address:
        raise ProviderConfigError("no address: set spec.address or an 'address' key in the Secret")
    _check_url(address, "the address")  # the message never quotes the URL: it is a credential
    if proxy:
        _check_url(proxy, "the proxy")
    return ProviderConfig(provider_type, address, channel, username or DEFAULT_USERNAME, token, proxy or None)


def provider_config(spec: Mapping[str, Any], secret_data: Mapping[str, str | bytes] | None = None) -> ProviderConfig:
    """Combine ``AlertProvider.spec`` with its decoded Secret data (``None`` when there is no ``secretRef``).

    Raises :class:`ProviderConfigError` when the result cannot post (the operator logs it and skips the provider).
    """
    secret = {key: _text(value) for key, value in (secret_data or {}).items()}

    def pick(key: str) -> str:
        return secret.get(key) or _text(spec.get(key) or "")

    return _build(
        _text(spec.get("type") or ""),
        pick("address"),
        channel=pick("channel"),
        username=pick("username"),
        token=pick("token"),
        proxy=pick("proxy") or None,
    )
