"""What a router keeps between ticks on its own object: ownership, the taken-over original, the split, the cookies.

Both routers write one routing object per Canary (a VirtualService or an HTTPRoute) and keep their bookkeeping in
its annotations, so a restarted operator resumes exactly: the original spec of an object Coalmine took over (put
back when the Canary goes), and the session-affinity cookies of the current, previous and primary runs. This module
reads that state back from the live object, the same way for every router.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.kube.meta import ANNOTATION_PREFIX, is_owned_by
from controller.rollout.spec import SessionAffinity
from controller.routers import Routes

ORIGINAL_CONFIGURATION_ANNOTATION = "coalmine.dev/original-configuration"
SESSION_COOKIE_ANNOTATION = "coalmine.dev/session-cookie"
PREVIOUS_SESSION_COOKIE_ANNOTATION = "coalmine.dev/previous-session-cookie"
PRIMARY_SESSION_COOKIE_ANNOTATION = "coalmine.dev/primary-session-cookie"


@dataclass(frozen=True)
class SessionCookies:
    """Session-affinity cookies (``name=value``): the one given to clients of the running canary, and the one of
    the previous run, which is expired on clients once the canary weight is back to 0, and the one given to clients
    of the primary during a run (``primaryCookieName``)."""

    current: str | None = None
    previous: str | None = None
    primary: str | None = None


def cookies_of(live: Mapping[str, Any]) -> SessionCookies:
    """The cookies recorded on a live routing object."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    return SessionCookies(
        annotations.get(SESSION_COOKIE_ANNOTATION),
        annotations.get(PREVIOUS_SESSION_COOKIE_ANNOTATION),
        annotations.get(PRIMARY_SESSION_COOKIE_ANNOTATION),
    )


@dataclass(frozen=True)
class LiveState:
    """What to build the next version of a routing object with: whether the Canary owns it, the bookkeeping
    annotations to write, and the split and cookies to keep."""

    owned: bool
    annotations: dict[str, str]
    routes: Routes
    cookies: SessionCookies


def live_state(
    live: Mapping[str, Any] | None,
    owner_name: str,
    routes: Routes | None,
    cookies: SessionCookies | None,
    read_routes: Callable[[Mapping[str, Any]], Routes | None],
) -> LiveState:
    """The state to write given the live object (None: not there yet): the same split and cookies unless
    ``routes``/``cookies`` say otherwise. An object the Canary does not own is taken over: its spec is saved (once)
    in the original-configuration annotation, and its split is only kept once it is adopted."""
    annotations: dict[str, str] = {}
    owned = live is None or is_owned_by(live, owner_name)
    if live is not None:
        live_annotations = (live.get("metadata") or {}).get("annotations") or {}
        original = live_annotations.get(ORIGINAL_CONFIGURATION_ANNOTATION)
        if original is None and not owned:
            original = json.dumps(live.get("spec") or {}, sort_keys=True, separators=(",", ":"))
        if original is not None:
            annotations[ORIGINAL_CONFIGURATION_ANNOTATION] = original
        adopted = owned or ORIGINAL_CONFIGURATION_ANNOTATION in live_annotations
        if routes is None:
            routes = (read_routes(live) if adopted else None) or Routes(100, 0)
        if cookies is None:
            cookies = cookies_of(live)
    cookies = cookies or SessionCookies()
    for key, value in (
        (SESSION_COOKIE_ANNOTATION, cookies.current),
        (PREVIOUS_SESSION_COOKIE_ANNOTATION, cookies.previous),
        (PRIMARY_SESSION_COOKIE_ANNOTATION, cookies.primary),
    ):
        if value:
            annotations[key] = value
    return LiveState(owned, annotations, routes or Routes(100, 0), cookies)


def next_cookies(
    live: Mapping[str, Any], affinity: SessionAffinity | None, canary_weight: int, new_cookie: Callable[[], str]
) -> SessionCookies:
    """The cookies after a split is written: a run that gives the canary traffic starts its cookie (and the primary's
    with ``primaryCookieName``); back at weight 0 the run is over — the canary's cookie is kept as the previous one,
    to be expired on clients, and the primary's no longer routes."""
    cookies = cookies_of(live)
    if affinity and canary_weight > 0:
        current = cookies.current or f"{affinity.cookie_name}={new_cookie()}"
        pinned = cookies.primary
        if affinity.primary_cookie_name and not pinned:
            pinned = f"{affinity.primary_cookie_name}={new_cookie()}"
        return SessionCookies(current, cookies.previous, pinned)
    if affinity and canary_weight == 0 and (cookies.current or cookies.primary):
        return SessionCookies(None, cookies.current or cookies.previous)
    return cookies


def restored(live: Mapping[str, Any]) -> dict[str, Any]:
    """A taken-over object as it was before Coalmine (its saved spec, our annotations gone); any other unchanged."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    original = annotations.get(ORIGINAL_CONFIGURATION_ANNOTATION)
    if original is None:
        return dict(live)
    result = {k: copy.deepcopy(v) for k, v in live.items() if k != "status"}
    metadata = dict(result.get("metadata") or {})
    metadata["annotations"] = {k: v for k, v in annotations.items() if not k.startswith(ANNOTATION_PREFIX)}
    result["metadata"] = metadata
    result["spec"] = json.loads(original)
    return result


__all__ = [
    "ORIGINAL_CONFIGURATION_ANNOTATION",
    "PREVIOUS_SESSION_COOKIE_ANNOTATION",
    "PRIMARY_SESSION_COOKIE_ANNOTATION",
    "SESSION_COOKIE_ANNOTATION",
    "LiveState",
    "SessionCookies",
    "cookies_of",
    "live_state",
    "next_cookies",
    "restored",
]
