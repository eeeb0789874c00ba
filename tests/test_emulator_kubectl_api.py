"""The parts of a real API server that real ``kubectl`` needs and Coalmine's own clients never asked for.

Each is checked over HTTP here (fast, exact), and end to end with real kubectl in ``test_kubectl_conformance``:
OpenAPI v3/v2 documents (client-side ``--validate`` and ``kubectl explain``), server-side field validation,
``meta.k8s.io/v1`` Tables (``kubectl get``), discovery of subresources, watch streams as ``application/json``,
``dryRun=All`` (``kubectl diff``, ``--dry-run=server``) and refusing bodies the emulator cannot read.
"""

from __future__ import annotations

import datetime
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from emulator import ThreadedEmulator
from emulator.tables import human_age, json_path

CANARIES = "coalmine.dev/v1alpha1/canaries"
DEPLOYMENTS = "apps/v1/deployments"
NS = "default"
TABLE = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)
CANARY_PATH = f"/apis/coalmine.dev/v1alpha1/namespaces/{NS}/canaries"
DEPLOYMENT_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments"


class Answer:
    def __init__(self, status: int, headers: Any, body: bytes, url: str = "") -> None:
        self.status, self.headers, self.body, self.url = status, headers, body, url

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    server: ThreadedEmulator,
    method: str,
    path: str,
    body: Any = None,
    *,
    accept: str = "application/json",
    content_type: str = "application/json",
    raw: bytes | None = None,
) -> Answer:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method=method)
    request.add_header("Accept", accept)
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(response.status, response.headers, response.read(), response.geturl())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, error.read())


def canary(name: str = "podinfo", **service: Any) -> dict[str, Any]:
    return {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 9898, **service},
        },
    }


def deployment(name: str = "podinfo", **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "podinfo:1", **container}]},
            },
        },
    }


# -- OpenAPI ------------------------------------------------------------------------------------------------------
def test_openapi_v3_index_lists_every_group_version_with_a_hashed_url(threaded_emulator: ThreadedEmulator) -> None:
    index = http(threaded_emulator, "GET", "/openapi/v3").json()["paths"]
    for path in ("api/v1", "apis/apps/v1", "apis/coalmine.dev/v1alpha1", "apis/apiextensions.k8s.io/v1"):
        assert index[path]["serverRelativeURL"].startswith(f"/openapi/v3/{path}?hash=")
    assert http(threaded_emulator, "GET", "/openapi/v3/apis/nope.dev/v1").status == 404
    url = index["apis/apps/v1"]["serverRelativeURL"]
    assert len(url.rsplit("=", 1)[1]) == 128  # SHA-512, upper-case hex, as upstream
    answer = http(threaded_emulator, "GET", url)
    assert answer.status == 200 and "immutable" in answer.headers["Cache-Control"]
    stale = http(threaded_emulator, "GET", "/openapi/v3/apis/apps/v1?hash=0A0B")  # urllib follows the redirect
    assert stale.status == 200 and stale.body == answer.body and stale.url.endswith(url)


def test_openapi_v3_patch_operations_name_their_kind_and_take_field_validation(
    threaded_emulator: ThreadedEmulator,
) -> None:
    """What kubectl's field-validation check reads: else it falls back to client-side validation from v2."""
    for path, kind, strategic in (
        ("apis/apps/v1", "Deployment", True),
        ("apis/coalmine.dev/v1alpha1", "Canary", False),
    ):
        document = http(threaded_emulator, "GET", f"/openapi/v3/{path}").json()
        patches = [
            item["patch"]
            for item in document["paths"].values()
            if "patch" in item and item["patch"]["x-kubernetes-group-version-kind"]["kind"] == kind
        ]
        assert patches, f"no PATCH operation for {kind}"
        for patch in patches:
            names = {p["name"] for p in patch["parameters"] if p["in"] == "query"}
            assert {"fieldValidation", "dryRun", "fieldManager"} <= names
            assert ("application/strategic-merge-patch+json" in patch["requestBody"]["content"]) is strategic


def test_openapi_v3_components_are_named_and_tagged_as_upstream(threaded_emulator: ThreadedEmulator) -> None:
    apps = http(threaded_emulator, "GET", "/openapi/v3/apis/apps/v1").json()["components"]["schemas"]
    deployment_schema = apps["io.k8s.api.apps.v1.Deployment"]
    assert deployment_schema["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}
    ]
    containers = apps["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"  # what kubectl apply's strategic merge uses
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in apps
    coalmine = http(threaded_emulator, "GET", "/openapi/v3/apis/coalmine.dev/v1alpha1").json()["components"]
    schema = coalmine["schemas"]["dev.coalmine.v1alpha1.Canary"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "coalmine.dev", "version": "v1alpha1", "kind": "Canary"}
    ]
    assert "analysis" in schema["properties"]["spec"]["properties"]
    assert schema["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]


def test_openapi_v2_is_json_or_406_for_protobuf(threaded_emulator: ThreadedEmulator) -> None:
    proto = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    assert http(threaded_emulator, "GET", "/openapi/v2", accept=proto).status == 406
    swagger = http(threaded_emulator, "GET", "/openapi/v2").json()
    assert swagger["swagger"] == "2.0"
    assert swagger["definitions"]["dev.coalmine.v1alpha1.Canary"]["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    assert "#/components/" not in json.dumps(swagger)


def test_a_crd_created_at_run_time_appears_in_openapi(threaded_emulator: ThreadedEmulator) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.dev"},
        "spec": {
            "group": "example.dev",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"size": {"type": "integer"}}}},
                }
            ],
        },
    }
    before = http(threaded_emulator, "GET", "/openapi/v3").json()["paths"]
    assert "apis/example.dev/v1" not in before
    assert http(threaded_emulator, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd).status == 201
    after = http(threaded_emulator, "GET", "/openapi/v3").json()["paths"]
    document = http(threaded_emulator, "GET", after["apis/example.dev/v1"]["serverRelativeURL"]).json()
    assert document["components"]["schemas"]["dev.example.v1.Gadget"]["properties"]["size"] == {"type": "integer"}


# -- field validation ---------------------------------------------------------------------------------------------
def test_strict_field_validation_refuses_unknown_fields_naming_them(threaded_emulator: ThreadedEmulator) -> None:
    answer = http(threaded_emulator, "POST", f"{CANARY_PATH}?fieldValidation=Strict", canary(portt=1))
    assert answer.status == 400, answer.body
    assert answer.json()["message"] == (
        'Canary in version "v1alpha1" cannot be handled as a Canary: strict decoding error: '
        'unknown field "spec.service.portt"'
    )
    answer = http(threaded_emulator, "POST", f"{DEPLOYMENT_PATH}?fieldValidation=Strict", deployment(imagee="x"))
    assert answer.status == 400
    assert 'unknown field "spec.template.spec.containers[0].imagee"' in answer.json()["message"]
    assert threaded_emulator.list_objects(DEPLOYMENTS, NS) == []


def test_warn_field_validation_stores_and_warns_and_known_fields_pass_strict(
    threaded_emulator: ThreadedEmulator,
) -> None:
    answer = http(threaded_emulator, "POST", CANARY_PATH, canary(portt=1))
    assert answer.status == 201
    assert answer.headers["Warning"] == '299 - "unknown field \\"spec.service.portt\\""'
    assert "portt" not in answer.json()["spec"]["service"]  # pruned, as before
    strict = http(threaded_emulator, "POST", f"{DEPLOYMENT_PATH}?fieldValidation=Strict", deployment())
    assert strict.status == 201, strict.body
    assert "Warning" not in strict.headers
    patch = {"$setElementOrder/containers": [{"name": "podinfo"}], "spec": {"paused": True}}
    answer = http(
        threaded_emulator,
        "PATCH",
        f"{DEPLOYMENT_PATH}/podinfo?fieldValidation=Strict",
        patch,
        content_type="application/strategic-merge-patch+json",
    )
    assert answer.status == 200, answer.body


def test_a_protobuf_body_is_refused_as_unsupported(threaded_emulator: ThreadedEmulator) -> None:
    answer = http(
        threaded_emulator,
        "POST",
        "/api/v1/namespaces",
        raw=b"k8s\x00\n\x0f\n\x02v1\x12\tNamespace",
        content_type="application/vnd.kubernetes.protobuf",
    )
    assert answer.status == 415
    assert answer.json()["reason"] == "UnsupportedMediaType"


# -- Tables ---------------------------------------------------------------------------------------------------------
def test_a_table_of_canaries_has_the_crd_printer_columns(threaded_emulator: ThreadedEmulator) -> None:
    threaded_emulator.create_object(CANARIES, canary(), NS)
    threaded_emulator.patch_object(
        CANARIES, NS, "podinfo", {"status": {"phase": "Progressing", "canaryWeight": 10}}, subresource="status"
    )
    table = http(threaded_emulator, "GET", CANARY_PATH, accept=TABLE).json()
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == ["Name", "Status", "Weight", "Step", "FailedChecks", "NoData", "LastTransitionTime", "Age"]
    (row,) = table["rows"]
    assert row["cells"][:4] == ["podinfo", "Progressing", 10, None]
    assert row["cells"][-1].endswith("s")  # an age, e.g. "0s"
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "podinfo"
    whole = http(threaded_emulator, "GET", f"{CANARY_PATH}/podinfo?includeObject=Object", accept=TABLE).json()
    assert whole["rows"][0]["object"]["spec"]["service"]["port"] == 9898
    plain = http(threaded_emulator, "GET", f"{CANARY_PATH}/podinfo").json()
    assert plain["kind"] == "Canary"


def test_a_table_of_deployments_has_ready_counts(threaded_emulator: ThreadedEmulator) -> None:
    threaded_emulator.create_object(DEPLOYMENTS, deployment(), NS)
    table = http(threaded_emulator, "GET", DEPLOYMENT_PATH, accept=TABLE).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Ready", "Up-to-date", "Available", "Age"]
    assert table["rows"][0]["cells"][:4] == ["podinfo", "2/2", 2, 2]


def test_json_path_and_ages_follow_kubectl() -> None:
    obj = {"status": {"conditions": [{"type": "A", "status": "x"}, {"type": "Ready", "status": "True"}]}}
    assert json_path(obj, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert json_path(obj, ".status.conditions[0].type") == ["A"]
    assert json_path(obj, ".status.missing") == []
    now = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
    for delta, text in ((5, "5s"), (200, "3m20s"), (600, "10m"), (3 * 3600 + 600, "3h10m"), (72 * 3600, "3d")):
        then = (now - datetime.timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert human_age(then, now) == text


# -- discovery -------------------------------------------------------------------------------------------------
def test_subresources_have_no_short_names_or_categories(threaded_emulator: ThreadedEmulator) -> None:
    resources = {
        r["name"]: r for r in http(threaded_emulator, "GET", "/apis/coalmine.dev/v1alpha1").json()["resources"]
    }
    assert "cmc" in resources["canaries"]["shortNames"]
    assert resources["canaries/status"]["shortNames"] == []
    assert resources["canaries/status"]["categories"] == []
    apps = {r["name"]: r for r in http(threaded_emulator, "GET", "/apis/apps/v1").json()["resources"]}
    assert apps["deployments/scale"]["kind"] == "Scale"
    assert apps["deployments/scale"]["categories"] == []


# -- watch -------------------------------------------------------------------------------------------------------
def test_a_watch_is_served_as_json_lines_and_as_tables_when_asked(threaded_emulator: ThreadedEmulator) -> None:
    threaded_emulator.create_object(CANARIES, canary("a"), NS)
    threaded_emulator.create_object(CANARIES, canary("b"), NS)
    answer = http(threaded_emulator, "GET", f"{CANARY_PATH}?watch=true&timeoutSeconds=1")
    assert answer.headers["Content-Type"].startswith("application/json")
    events = [json.loads(line) for line in answer.body.splitlines() if line.strip()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a"), ("ADDED", "b")]
    answer = http(threaded_emulator, "GET", f"{CANARY_PATH}?watch=true&timeoutSeconds=1", accept=TABLE)
    assert answer.headers["Content-Type"].startswith("application/json")
    first, second = (json.loads(line)["object"] for line in answer.body.splitlines() if line.strip())
    assert first["kind"] == "Table" and first["columnDefinitions"][0]["name"] == "Name"
    assert first["rows"][0]["cells"][0] == "a"
    assert second["columnDefinitions"] == [] and second["rows"][0]["cells"][0] == "b"


# -- dryRun ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("verb", ["create", "patch", "replace", "delete"])
def test_dry_run_answers_like_a_write_but_changes_nothing(threaded_emulator: ThreadedEmulator, verb: str) -> None:
    created = threaded_emulator.create_object(DEPLOYMENTS, deployment(), NS)
    version = threaded_emulator.emulator.store.resource_version
    events: list[Any] = []
    hub = threaded_emulator.emulator.watches
    publish = hub.publish

    def recording(*args: Any) -> None:
        events.append(args)
        publish(*args)

    hub.publish = recording  # type: ignore[method-assign,assignment]
    item = f"{DEPLOYMENT_PATH}/podinfo?dryRun=All"
    if verb == "create":
        answer = http(threaded_emulator, "POST", f"{DEPLOYMENT_PATH}?dryRun=All", deployment("other"))
        assert answer.status == 201 and answer.json()["metadata"]["name"] == "other"
        assert "resourceVersion" not in answer.json()["metadata"]
    elif verb == "patch":
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "podinfo", "image": "podinfo:2"}]}}}}
        answer = http(threaded_emulator, "PATCH", item, patch, content_type="application/merge-patch+json")
        assert answer.status == 200 and answer.json()["metadata"]["generation"] == 2
        assert answer.json()["spec"]["template"]["spec"]["containers"][0]["image"] == "podinfo:2"
    elif verb == "replace":
        body = {**deployment(), "metadata": {**created["metadata"]}}
        body["spec"]["replicas"] = 5
        answer = http(threaded_emulator, "PUT", item, body)
        assert answer.status == 200 and answer.json()["spec"]["replicas"] == 5
    else:
        answer = http(threaded_emulator, "DELETE", item)
        assert answer.status == 200
    if verb != "create" and verb != "delete":
        assert answer.json()["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert threaded_emulator.emulator.store.resource_version == version
    assert events == []
    stored = threaded_emulator.read_object(DEPLOYMENTS, NS, "podinfo")
    assert stored is not None and dict(stored) == created
    assert threaded_emulator.read_object(DEPLOYMENTS, NS, "other") is None


def test_dry_run_still_validates(threaded_emulator: ThreadedEmulator) -> None:
    threaded_emulator.create_object(CANARIES, canary(), NS)
    answer = http(threaded_emulator, "POST", f"{CANARY_PATH}?dryRun=All", canary())
    assert answer.status == 409  # AlreadyExists, as a real create would answer
    answer = http(threaded_emulator, "POST", f"{CANARY_PATH}?dryRun=Sometimes", canary("x"))
    assert answer.status == 400
