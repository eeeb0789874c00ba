"""KubeClient over real HTTP (a scripted local server): paths, verbs, content types, error mapping with messages
that name the object, timeouts, the RBAC recorder, and create-or-update's conflict handling."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fakekube import FakeKube
from kubernetes.client import Configuration
from test_prometheus_provider import _answer_json, _Pki, _scripted, pki  # noqa: F401 (pki: a fixture)

from controller.kube.client import (
    CANARIES,
    CONFIGMAPS,
    DEPLOYMENTS,
    SERVICES,
    ApiCall,
    KubeClient,
    PatchType,
    create_or_update,
)
from controller.kube.errors import (
    ApiConflict,
    ApiForbidden,
    ApiInvalid,
    ApiUnavailable,
    KubeError,
)


@dataclass
class Seen:
    method: str
    path: str
    content_type: str
    body: Any
    authorization: str = ""


@dataclass
class Script:
    """What the fake API server answers: (status, body) per (method, path-without-query), default 200 {}."""

    answers: dict[tuple[str, str], list[tuple[int, Any]]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    delay_s: float = 0.0

    def on(self, method: str, path: str, *answers: tuple[int, Any]) -> None:
        self.answers[(method, path)] = list(answers)


def status_body(code: int, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}


@pytest.fixture
def server() -> Iterator[tuple[Script, str]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            script.seen.append(
                Seen(
                    self.command,
                    self.path,
                    self.headers.get("Content-Type", ""),
                    json.loads(raw) if raw else None,
                    self.headers.get("Authorization", ""),
                )
            )
            if script.delay_s:
                time.sleep(script.delay_s)
            queue = script.answers.get((self.command, self.path.split("?")[0])) or [(200, {})]
            status, body = queue.pop(0) if len(queue) > 1 else queue[0]
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError):  # a client that timed out has left, as intended
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield script, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def client(server: tuple[Script, str]) -> Iterator[tuple[KubeClient, Script, list[ApiCall]]]:
    script, url = server
    calls: list[ApiCall] = []
    kube = KubeClient.from_configuration(
        Configuration(host=url), recorder=calls.append, timeout_s=1.0, instance="coalmine-0"
    )
    try:
        yield kube, script, calls
    finally:
        kube.close()


DEP_PATH = "/apis/apps/v1/namespaces/test/deployments/podinfo"


def test_get_reads_the_object_and_answers_none_when_absent(client: Any) -> None:
    kube, script, calls = client
    script.on("GET", DEP_PATH, (200, {"metadata": {"name": "podinfo"}}))
    assert kube.get(DEPLOYMENTS, "test", "podinfo") == {"metadata": {"name": "podinfo"}}
    script.on("GET", "/api/v1/namespaces/test/services/gone", (404, status_body(404, 'services "gone" not found')))
    assert kube.get(SERVICES, "test", "gone") is None
    assert calls[0] == ApiCall("get", "apps", "deployments")
    assert calls[-1] == ApiCall("get", "", "services")


def test_requests_carry_the_configured_bearer_token_refreshed_by_its_hook(server: tuple[Script, str]) -> None:
    """The credentials the official client would send (in a pod: a projected token that kubelet rotates)."""
    script, url = server
    tokens = iter(["first", "rotated"])
    configuration = Configuration(host=url, api_key={"BearerToken": "stale"}, api_key_prefix={"BearerToken": "Bearer"})
    configuration.refresh_api_key_hook = lambda conf: conf.api_key.update(BearerToken=next(tokens))
    kube = KubeClient.from_configuration(configuration, timeout_s=1.0)
    try:
        kube.get(DEPLOYMENTS, "test", "podinfo")
        kube.patch_status(CANARIES, "test", "podinfo", {"phase": "Progressing"})
    finally:
        kube.close()
    assert [seen.authorization for seen in script.seen] == ["Bearer first", "Bearer rotated"]


def test_list_sends_the_label_selector(client: Any) -> None:
    kube, script, calls = client
    script.on("GET", "/api/v1/namespaces/test/configmaps", (200, {"items": [{"metadata": {"name": "a"}}]}))
    assert kube.list(CONFIGMAPS, "test", "app=podinfo,tier in (web)") == [{"metadata": {"name": "a"}}]
    assert script.seen[0].path == "/api/v1/namespaces/test/configmaps?labelSelector=app%3Dpodinfo%2Ctier+in+%28web%29"
    assert calls == [ApiCall("list", "", "configmaps")]


def test_writes_use_the_right_verbs_paths_and_content_types(client: Any) -> None:
    kube, script, calls = client
    kube.create(DEPLOYMENTS, "test", {"metadata": {"name": "podinfo"}, "spec": {}})
    kube.replace(DEPLOYMENTS, "test", {"metadata": {"name": "podinfo", "resourceVersion": "7"}, "spec": {}})
    kube.scale("test", "podinfo", 0)
    kube.patch(DEPLOYMENTS, "test", "podinfo", [{"op": "remove", "path": "/x"}], PatchType.JSON)
    kube.patch_status(CANARIES, "test", "podinfo", {"phase": "Progressing"})
    assert kube.delete(DEPLOYMENTS, "test", "podinfo") is True
    got = [(s.method, s.path, s.content_type) for s in script.seen]
    assert got == [
        ("POST", "/apis/apps/v1/namespaces/test/deployments", "application/json"),
        ("PUT", DEP_PATH, "application/json"),
        ("PATCH", DEP_PATH, "application/merge-patch+json"),
        ("PATCH", DEP_PATH, "application/json-patch+json"),
        (
            "PATCH",
            "/apis/coalmine.dev/v1alpha1/namespaces/test/canaries/podinfo/status",
            "application/merge-patch+json",
        ),
        ("DELETE", DEP_PATH, "application/json"),
    ]
    assert script.seen[0].body["apiVersion"] == "apps/v1" and script.seen[0].body["kind"] == "Deployment"
    assert script.seen[1].body["metadata"]["resourceVersion"] == "7"
    assert script.seen[2].body == {"spec": {"replicas": 0}}
    assert script.seen[3].body == [{"op": "remove", "path": "/x"}]
    assert script.seen[4].body == {"status": {"phase": "Progressing"}}
    assert script.seen[5].body["propagationPolicy"] == "Background"
    assert calls == [
        ApiCall("create", "apps", "deployments"),
        ApiCall("update", "apps", "deployments"),
        ApiCall("patch", "apps", "deployments"),
        ApiCall("patch", "apps", "deployments"),
        ApiCall("patch", "coalmine.dev", "canaries/status"),
        ApiCall("delete", "apps", "deployments"),
    ]


def test_delete_of_a_missing_object_is_not_an_error(client: Any) -> None:
    kube, script, _ = client
    script.on("DELETE", DEP_PATH, (404, status_body(404, "not found")))
    assert kube.delete_if_exists(DEPLOYMENTS, "test", "podinfo") is False


@pytest.mark.parametrize(
    ("status", "error"),
    [(409, ApiConflict), (422, ApiInvalid), (403, ApiForbidden), (500, ApiUnavailable), (429, ApiUnavailable)],
)
def test_errors_are_mapped_and_name_the_object(client: Any, status: int, error: type[KubeError]) -> None:
    kube, script, _ = client
    script.on("POST", "/apis/apps/v1/namespaces/test/deployments", (status, status_body(status, "the reason")))
    with pytest.raises(error, match=rf"Deployment test/podinfo: the reason \(HTTP {status}\)"):
        kube.create(DEPLOYMENTS, "test", {"metadata": {"name": "podinfo"}})


def test_a_hung_api_server_is_a_timeout_not_a_stuck_thread(client: Any) -> None:
    kube, script, _ = client
    script.delay_s = 1.5
    started = time.monotonic()
    with pytest.raises(ApiUnavailable, match="Deployment test/podinfo"):
        kube.get(DEPLOYMENTS, "test", "podinfo")
    assert time.monotonic() - started < 1.4  # one attempt, not four


def test_an_unreachable_api_server_is_unavailable() -> None:
    kube = KubeClient.from_configuration(Configuration(host="http://127.0.0.1:9"), timeout_s=1.0)
    try:
        with pytest.raises(ApiUnavailable, match="ConfigMap test/x"):
            kube.get(CONFIGMAPS, "test", "x")
    finally:
        kube.close()


def test_events_are_posted_to_events_k8s_io(client: Any) -> None:
    kube, script, calls = client
    canary = {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "u"},
    }
    kube.emit_event(canary, reason="Synced", note="Initialization done! podinfo.test", action="Initialize")
    (seen,) = script.seen
    assert seen.path == "/apis/events.k8s.io/v1/namespaces/test/events"
    assert seen.body["reason"] == "Synced" and seen.body["type"] == "Normal"
    assert seen.body["reportingInstance"] == "coalmine-0"
    assert calls == [ApiCall("create", "events.k8s.io", "events")]


def test_create_or_update_over_http_creates_when_absent(client: Any) -> None:
    kube, script, _ = client
    script.on("GET", "/api/v1/namespaces/test/services/podinfo", (404, status_body(404, "not found")))
    kube.create_or_update(SERVICES, "test", {"metadata": {"name": "podinfo"}, "spec": {"type": "ClusterIP"}})
    assert [s.method for s in script.seen] == ["GET", "POST"]


# -- create_or_update semantics (in memory) ----------------------------------------------------------------------


def test_create_or_update_keeps_server_fields_and_foreign_metadata_and_skips_no_op_writes() -> None:
    kube = FakeKube()
    kube.put(
        SERVICES,
        "test",
        {
            "metadata": {"name": "podinfo", "labels": {"added-by": "someone"}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.0.0.7", "ports": [{"port": 80}]},
        },
    )
    desired = {
        "metadata": {"name": "podinfo", "labels": {"app": "podinfo"}},
        "spec": {"type": "ClusterIP", "ports": [{"port": 9898}]},
    }
    live = create_or_update(kube, SERVICES, "test", desired)
    assert live["spec"] == {"type": "ClusterIP", "clusterIP": "10.0.0.7", "ports": [{"port": 9898}]}
    assert live["metadata"]["labels"] == {"added-by": "someone", "app": "podinfo"}
    kube.writes.clear()
    create_or_update(kube, SERVICES, "test", desired)
    assert kube.writes == []


def test_create_or_update_re_reads_and_re_applies_on_conflict() -> None:
    kube = FakeKube()
    kube.put(DEPLOYMENTS, "test", {"metadata": {"name": "podinfo"}, "spec": {"replicas": 1}})
    kube.conflicts = 3
    live = create_or_update(kube, DEPLOYMENTS, "test", {"metadata": {"name": "podinfo"}, "spec": {"replicas": 0}})
    assert live["spec"]["replicas"] == 0
    assert "someone-else" in live["metadata"]["annotations"]
    kube.conflicts = 50
    with pytest.raises(ApiConflict, match="still conflicting after 5 attempts"):
        create_or_update(kube, DEPLOYMENTS, "test", {"metadata": {"name": "podinfo"}, "spec": {"replicas": 2}})


# --- HTTPS: the kept-alive connections are made with the client's own TLS settings ------------------------------


def test_https_trusts_the_configured_ca_keeps_one_connection_and_refuses_an_unknown_ca(pki: _Pki) -> None:  # noqa: F811
    body = json.dumps({"kind": "Deployment", "metadata": {"name": "app", "namespace": "ns"}}).encode()
    with _scripted(lambda handler, _: _answer_json(handler, 200, body), tls=pki.server_context()) as server:
        address = server.url.replace("127.0.0.1", "localhost")
        configuration = Configuration(host=address)
        configuration.ssl_ca_cert = str(pki.ca)
        trusting = KubeClient.from_configuration(configuration, timeout_s=5)
        try:
            names = [(trusting.get(DEPLOYMENTS, "ns", "app") or {})["metadata"]["name"] for _ in range(3)]
        finally:
            trusting.close()
        assert names == ["app"] * 3
        assert server.connections == 1  # one handshake, then keep-alive
        assert server.seen[0].path == "/apis/apps/v1/namespaces/ns/deployments/app"
        untrusting = KubeClient.from_configuration(Configuration(host=address), timeout_s=5)  # certifi's CAs only
        try:
            with pytest.raises(ApiUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
                untrusting.get(DEPLOYMENTS, "ns", "app")
        finally:
            untrusting.close()


def test_an_api_server_behind_a_path_prefix_gets_the_prefix_on_every_request() -> None:
    body = json.dumps({"kind": "Deployment", "metadata": {"name": "app", "namespace": "ns"}}).encode()
    with _scripted(lambda handler, _: _answer_json(handler, 200, body)) as server:
        kube = KubeClient.from_configuration(Configuration(host=server.url + "/k8s/clusters/c-1/"), timeout_s=5)
        try:
            assert kube.get(DEPLOYMENTS, "ns", "app") is not None
        finally:
            kube.close()
    assert [seen.path for seen in server.seen] == ["/k8s/clusters/c-1/apis/apps/v1/namespaces/ns/deployments/app"]
