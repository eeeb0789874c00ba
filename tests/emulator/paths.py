"""Parse API URLs into resource, namespace, name and subresource — including the ``namespaces`` resource.

kmock 0.8 reads ``/api/v1/namespaces/<x>`` as "namespace x, no resource" and fails on ``/api/v1/namespaces``
itself, so listing, watching or fetching Namespace objects (which kopf does to serve namespace patterns) would
break. This parser follows the API server's grammar instead::

    /api/v1 | /apis/<group>/<version>  [/namespaces/<ns>]  /<plural>  [/<name>  [/<subresource>]]

where ``/api/v1/namespaces/<name>[/status|/finalize]`` is the Namespace object itself.
"""

from __future__ import annotations

import aiohttp.web
from kmock._internal import enums, parsing, references, rendering

from .objects import ApiError

_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


def parse_api_path(path: str) -> parsing.ParsedPath:
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    elif len(parts) == 2 and parts[0] == "apis":
        return parsing.ParsedPath(group=parts[1])
    else:
        return parsing.ParsedPath()
    namespace: str | None = None
    if (
        rest
        and rest[0] == "namespaces"
        and (len(rest) == 2 or (len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES and group == ""))
    ):
        pass  # the Namespace object itself: plural "namespaces", name rest[1]
    elif len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else None
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return parsing.ParsedPath(group, version, plural, namespace, name, subresource)


async def parse_request(raw_request: aiohttp.web.BaseRequest, *, id: int) -> rendering.Request:
    """kmock's ``Request._parse`` with :func:`parse_api_path` for the Kubernetes part."""
    body = await raw_request.read()
    text = await raw_request.text()
    try:
        data = await raw_request.json()
    except ValueError:
        data = None
    k8s = parse_api_path(raw_request.path)
    resource = (
        None if k8s.group is None else references.resource(group=k8s.group, version=k8s.version, plural=k8s.plural)
    )
    method = enums.method(raw_request.method)
    return rendering.Request(
        id=id,
        raw_request=raw_request,
        url=raw_request.url,
        method=raw_request.method,
        params=dict(raw_request.query),
        headers=dict(raw_request.headers),
        cookies=dict(raw_request.cookies),
        data=data,
        body=body,
        text=text,
        action=parsing.guess_k8s(k8s, method, dict(raw_request.query)),
        resource=resource,
        namespace=k8s.namespace,
        name=k8s.name,
        subresource=k8s.subresource,
    )


def check_body_type(request: rendering.Request) -> None:
    """415 for a body the emulator cannot read: protobuf, which kubectl's typed clients send (``kubectl create
    namespace``, ``kubectl create configmap``); JSON (and YAML, for server-side apply's own refusal) pass."""
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
    if content_type and "json" not in content_type and "yaml" not in content_type and request.body:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format ({content_type}) - the emulator reads JSON only",
        )
