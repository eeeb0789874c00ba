"""The emulated API behaves like a real API server where Coalmine relies on it — over real HTTP, official client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import kopf
import kubernetes.client
import kubernetes.config
import kubernetes.watch
import pytest
from emulator import (
    CoalmineEmulator,
    FaultInjector,
    FaultPolicy,
    ThreadedEmulator,
    api_client_for,
    running_operator,
    serving,
)
from emulator.schemas import load_crd_files
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

WIDGETS = Path(__file__).parent / "emulator" / "testdata" / "widgets.yaml"
CANARIES = "coalmine.dev/v1alpha1/canaries"
CANARY_RESOURCE = kmock.resource(CANARIES)
NS = "default"


def _canary(name: str = "podinfo", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 9898},
            **spec,
        },
    }


def _deployment(name: str = "podinfo", replicas: int = 2) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "app", "image": "podinfo:6.0.0"}, {"name": "sidecar", "image": "proxy:1"}]
                },
            },
        },
    }


# Every resource the operator (or kopf) touches: (apiVersion, kind, namespaced, a valid spec-ish body part).
RESOURCES: list[tuple[str, str, bool, dict[str, Any]]] = [
    ("v1", "Namespace", False, {}),
    ("v1", "Service", True, {"spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}}),
    ("v1", "ConfigMap", True, {"data": {"k": "v"}}),
    ("v1", "Secret", True, {"stringData": {"token": "s3cret"}}),
    ("v1", "Event", True, {"involvedObject": {"kind": "Canary", "name": "x"}, "reason": "Synced", "message": "m"}),
    (
        "events.k8s.io/v1",
        "Event",
        True,
        {
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reason": "Synced",
            "action": "Sync",
            "reportingController": "coalmine",
            "reportingInstance": "c-1",
            "type": "Normal",
        },
    ),
    ("apps/v1", "Deployment", True, {"spec": _deployment()["spec"]}),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        True,
        {"spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}, "maxReplicas": 4}},
    ),
    ("coordination.k8s.io/v1", "Lease", True, {"spec": {"holderIdentity": "coalmine-0"}}),
    ("networking.istio.io/v1beta1", "VirtualService", True, {"spec": {"hosts": ["x"], "http": []}}),
    ("networking.istio.io/v1", "VirtualService", True, {"spec": {"hosts": ["x"], "http": []}}),
    ("networking.istio.io/v1beta1", "DestinationRule", True, {"spec": {"host": "x"}}),
    ("networking.istio.io/v1", "DestinationRule", True, {"spec": {"host": "x"}}),
    ("coalmine.dev/v1alpha1", "Canary", True, {"spec": _canary()["spec"]}),
    (
        "coalmine.dev/v1alpha1",
        "MetricTemplate",
        True,
        {"spec": {"provider": {"type": "prometheus"}, "query": "sum(up)"}},
    ),
    ("coalmine.dev/v1alpha1", "AlertProvider", True, {"spec": {"type": "slack", "channel": "#x"}}),
    ("coalmine.dev/v1alpha1", "BlueGreen", True, {"spec": {"anything": 1}}),
    ("kopf.dev/v1", "KopfPeering", True, {"status": {}}),
    ("kopf.dev/v1", "ClusterKopfPeering", False, {"status": {}}),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition", False, {}),
]


@pytest.fixture
def dynamic(k8s_client: kubernetes.client.ApiClient) -> DynamicClient:
    return DynamicClient(k8s_client)  # discovers every resource through the emulator's discovery endpoints


@pytest.fixture
def schemaless() -> Iterator[DynamicClient]:
    """Coalmine's kinds without their CRD schemas, so the CRUD matrix doesn't depend on how they evolve."""
    with ThreadedEmulator(CoalmineEmulator(crd_paths=[])) as running, api_client_for(running.url) as client:
        yield DynamicClient(client)


def _body(api_version: str, kind: str, part: dict[str, Any]) -> dict[str, Any]:
    if kind == "CustomResourceDefinition":
        import yaml

        return dict(yaml.safe_load(WIDGETS.read_text()))
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "crud-x"}, **part}


@pytest.mark.parametrize(
    ("api_version", "kind", "namespaced", "part"), RESOURCES, ids=[f"{a}/{k}" for a, k, _, _ in RESOURCES]
)
def test_crud_over_http_for_every_registered_resource(
    schemaless: DynamicClient, api_version: str, kind: str, namespaced: bool, part: dict[str, Any]
) -> None:
    api = schemaless.resources.get(api_version=api_version, kind=kind)
    assert api.namespaced is namespaced
    scope = {"namespace": NS} if namespaced else {}
    body = _body(api_version, kind, part)
    name = body["metadata"]["name"]

    created = api.create(body=body, **scope)
    assert created.metadata.uid and created.metadata.resourceVersion
    assert api.get(name=name, **scope).metadata.uid == created.metadata.uid
    assert name in [item.metadata.name for item in api.get(**scope).items]

    patched = api.patch(
        name=name, body={"metadata": {"labels": {"tier": "x"}}}, content_type="application/merge-patch+json", **scope
    )
    assert patched.metadata.labels["tier"] == "x"
    assert int(patched.metadata.resourceVersion) > int(created.metadata.resourceVersion)

    api.delete(name=name, **scope)
    with pytest.raises(ApiException) as exc:
        api.get(name=name, **scope)
    assert exc.value.status == 404


def test_the_repositorys_crds_are_served_with_their_schemas() -> None:
    server = CoalmineEmulator()
    plurals = ("canaries", "metrictemplates", "alertproviders", "bluegreens")
    served = [server.spec(f"coalmine.dev/v1alpha1/{plural}") for plural in plurals]
    stand_in = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    with_schema = {spec.plural for spec in served if spec.validator is not None and spec.schema != stand_in}
    files = sorted((Path(__file__).parents[1] / "crds").glob("*.yaml"))
    from_files = {doc["spec"]["names"]["plural"] for doc in load_crd_files(files)}
    assert with_schema == from_files & set(plurals)  # the others are schemaless stand-ins until written
    assert all(spec.has_status for spec in served)


def test_secrets_get_string_data_encoded_and_services_a_cluster_ip(k8s_client: kubernetes.client.ApiClient) -> None:
    core = kubernetes.client.CoreV1Api(k8s_client)
    secret = core.create_namespaced_secret(NS, {"metadata": {"name": "s"}, "stringData": {"a": "b"}})
    assert secret.data == {"a": "Yg=="} and not secret.string_data
    svc = core.create_namespaced_service(NS, {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}})
    assert svc.spec.cluster_ip and svc.spec.type == "ClusterIP"


def test_status_subresource_is_separate_and_generation_tracks_spec_only(dynamic: DynamicClient) -> None:
    canaries = dynamic.resources.get(api_version="coalmine.dev/v1alpha1", kind="Canary")
    body = _canary()
    body["status"] = {"phase": "Succeeded"}
    created = canaries.create(body=body, namespace=NS)
    assert created.metadata.generation == 1
    assert not created.get("status")  # status is not writable on create

    merge = "application/merge-patch+json"
    status = canaries.status.patch(
        name="podinfo",
        namespace=NS,
        content_type=merge,
        body={"status": {"phase": "Progressing"}, "spec": {"suspend": True}},
    )
    assert status.status.phase == "Progressing"
    assert status.spec.suspend is False  # the status endpoint ignores spec
    assert status.metadata.generation == 1  # status writes never bump generation
    assert int(status.metadata.resourceVersion) > int(created.metadata.resourceVersion)

    main = canaries.patch(
        name="podinfo",
        namespace=NS,
        content_type=merge,
        body={"status": {"phase": "Failed"}, "spec": {"suspend": True}},
    )
    assert main.spec.suspend is True
    assert main.status.phase == "Progressing"  # the main endpoint ignores status
    assert main.metadata.generation == 2

    relabel = canaries.patch(
        name="podinfo", namespace=NS, content_type=merge, body={"metadata": {"labels": {"a": "b"}}}
    )
    assert relabel.metadata.generation == 2  # metadata changes don't bump generation

    same = canaries.patch(name="podinfo", namespace=NS, content_type=merge, body={"spec": {"suspend": True}})
    assert same.metadata.resourceVersion == relabel.metadata.resourceVersion  # a no-op write


def test_stale_resource_version_is_a_conflict(k8s_client: kubernetes.client.ApiClient) -> None:
    custom = kubernetes.client.CustomObjectsApi(k8s_client)
    created = custom.create_namespaced_custom_object("coalmine.dev", "v1alpha1", NS, "canaries", _canary())
    stale = created["metadata"]["resourceVersion"]
    args = ("coalmine.dev", "v1alpha1", NS, "canaries", "podinfo")
    custom.patch_namespaced_custom_object(*args, {"spec": {"suspend": True}})

    with pytest.raises(ApiException) as exc:  # a merge patch carrying an old resourceVersion
        custom.patch_namespaced_custom_object(
            *args, {"metadata": {"resourceVersion": stale}, "spec": {"suspend": False}}
        )
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "Conflict"

    with pytest.raises(ApiException) as exc:  # a full replace of an outdated copy
        custom.replace_namespaced_custom_object(*args, created)
    assert exc.value.status == 409

    with pytest.raises(ApiException) as exc:  # kopf's optimistic JSON-patch test
        custom.patch_namespaced_custom_object(
            *args,
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": stale},
                {"op": "replace", "path": "/spec/suspend", "value": False},
            ],
            _content_type="application/json-patch+json",
        )
    assert exc.value.status == 422

    with pytest.raises(ApiException) as exc:
        custom.delete_namespaced_custom_object(*args, body={"preconditions": {"resourceVersion": stale}})
    assert exc.value.status == 409
    current = custom.get_namespaced_custom_object(*args)
    assert current["spec"]["suspend"] is True  # none of the rejected writes was applied

    fresh = custom.replace_namespaced_custom_object(*args, {**current, "spec": {**current["spec"], "suspend": False}})
    assert fresh["spec"]["suspend"] is False  # the current resourceVersion is accepted


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", {"web-a", "web-b"}),
        ("app==web,tier=front", {"web-a"}),
        ("app!=web", {"db", "bare"}),
        ("tier in (front,back)", {"web-a", "web-b", "db"}),
        ("app=web,tier notin (front)", {"web-b"}),
        ("canary", {"web-b"}),
        ("!tier", {"bare"}),
    ],
)
def test_label_selectors_filter_lists(
    k8s_client: kubernetes.client.ApiClient, selector: str, expected: set[str]
) -> None:
    core = kubernetes.client.CoreV1Api(k8s_client)
    for name, labels in {
        "web-a": {"app": "web", "tier": "front"},
        "web-b": {"app": "web", "tier": "back", "canary": "true"},
        "db": {"app": "db", "tier": "back"},
        "bare": {},
    }.items():
        core.create_namespaced_config_map(NS, {"metadata": {"name": name, "labels": labels}})
    found = core.list_namespaced_config_map(NS, label_selector=selector).items
    assert {item.metadata.name for item in found} == expected


def test_watch_honours_selectors_and_label_changes(
    threaded_emulator: ThreadedEmulator, k8s_client: kubernetes.client.ApiClient
) -> None:
    core = kubernetes.client.CoreV1Api(k8s_client)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "a", "labels": {"app": "web"}}})
    core.create_namespaced_config_map(NS, {"metadata": {"name": "b", "labels": {"app": "db"}}})
    listed = core.list_namespaced_config_map(NS, label_selector="app=web")
    core.patch_namespaced_config_map("b", NS, {"metadata": {"labels": {"app": "web"}}})  # starts matching
    core.patch_namespaced_config_map("a", NS, {"metadata": {"labels": {"app": "old"}}})  # stops matching
    core.delete_namespaced_config_map("b", NS)

    events = [
        (event["type"], event["object"].metadata.name)
        for event in kubernetes.watch.Watch().stream(
            core.list_namespaced_config_map,
            NS,
            label_selector="app=web",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=1,
        )
    ]
    assert events == [("ADDED", "b"), ("DELETED", "a"), ("DELETED", "b")]


def test_finalizers_hold_deletion_until_removed(k8s_client: kubernetes.client.ApiClient) -> None:
    core = kubernetes.client.CoreV1Api(k8s_client)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "held", "finalizers": ["coalmine.dev/revert"]}})
    core.delete_namespaced_config_map("held", NS)
    held = core.read_namespaced_config_map("held", NS)
    assert held.metadata.deletion_timestamp is not None

    with pytest.raises(ApiException) as exc:  # no new finalizers while deleting
        core.patch_namespaced_config_map("held", NS, {"metadata": {"finalizers": ["coalmine.dev/revert", "x/y"]}})
    assert exc.value.status == 422

    core.patch_namespaced_config_map("held", NS, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("held", NS)
    assert exc.value.status == 404


def test_owned_objects_are_garbage_collected_unless_orphaned(k8s_client: kubernetes.client.ApiClient) -> None:
    custom = kubernetes.client.CustomObjectsApi(k8s_client)
    core = kubernetes.client.CoreV1Api(k8s_client)
    for name in ("owner", "keeper"):
        owner = custom.create_namespaced_custom_object("coalmine.dev", "v1alpha1", NS, "canaries", _canary(name))
        ref = {
            "apiVersion": "coalmine.dev/v1alpha1",
            "kind": "Canary",
            "name": name,
            "uid": owner["metadata"]["uid"],
            "controller": True,
        }
        core.create_namespaced_config_map(NS, {"metadata": {"name": f"{name}-cm", "ownerReferences": [ref]}})
    custom.delete_namespaced_custom_object("coalmine.dev", "v1alpha1", NS, "canaries", "owner")
    custom.delete_namespaced_custom_object(
        "coalmine.dev", "v1alpha1", NS, "canaries", "keeper", body={"propagationPolicy": "Orphan"}
    )
    remaining = {cm.metadata.name for cm in core.list_namespaced_config_map(NS).items}
    assert remaining == {"keeper-cm"}


@pytest.fixture
def widget_emulator() -> Iterator[ThreadedEmulator]:
    with ThreadedEmulator(CoalmineEmulator(crd_paths=[WIDGETS])) as running:
        yield running


def test_custom_resources_are_pruned_defaulted_and_validated(widget_emulator: ThreadedEmulator) -> None:
    with api_client_for(widget_emulator.url) as client:
        custom = kubernetes.client.CustomObjectsApi(client)
        args = ("test.coalmine.dev", "v1", NS, "widgets")

        def widget(name: str, **spec: Any) -> dict[str, Any]:
            return {"apiVersion": "test.coalmine.dev/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}

        made = custom.create_namespaced_custom_object(
            *args, widget("ok", size=3, port="http", note=None, bogus=1, extra={"free": {"form": 1}})
        )
        assert made["spec"] == {
            "size": 3,
            "port": "http",
            "note": None,
            "color": "red",
            "extra": {"free": {"form": 1}},
        }  # pruned, defaulted, preserved
        custom.create_namespaced_custom_object(*args, widget("numeric-port", size=1, port=8080))

        with pytest.raises(ApiException) as exc:
            custom.create_namespaced_custom_object(*args, widget("bad", size=0, color="blue"))
        status = json.loads(exc.value.body)
        assert exc.value.status == 422 and status["reason"] == "Invalid"
        assert {cause["field"] for cause in status["details"]["causes"]} == {"spec.size", "spec.color"}

        with pytest.raises(ApiException) as exc:  # updates are validated too
            custom.patch_namespaced_custom_object(*args, "ok", {"spec": {"size": 11}})
        assert exc.value.status == 422
        with pytest.raises(ApiException) as exc:  # and so is the name
            custom.create_namespaced_custom_object(*args, widget("Not_A_Name", size=1))
        assert exc.value.status == 422


def test_schema_validation_can_be_turned_off_for_the_benchmark_pruning_and_defaults_still_apply(
    widget_emulator: ThreadedEmulator,
) -> None:
    widget_emulator.emulator.store.validate = False
    with api_client_for(widget_emulator.url) as client:
        custom = kubernetes.client.CustomObjectsApi(client)
        body = {"apiVersion": "test.coalmine.dev/v1", "kind": "Widget", "metadata": {"name": "w"}}
        made = custom.create_namespaced_custom_object(
            "test.coalmine.dev", "v1", NS, "widgets", {**body, "spec": {"size": 0, "bogus": 1}}
        )
    assert made["spec"] == {"size": 0, "color": "red"}  # size 0 is below the minimum: accepted, yet pruned/defaulted


def test_deployments_merge_containers_by_name_and_scale(k8s_client: kubernetes.client.ApiClient) -> None:
    apps = kubernetes.client.AppsV1Api(k8s_client)
    created = apps.create_namespaced_deployment(NS, _deployment())
    assert created.status.ready_replicas == 2 and created.status.observed_generation == 1

    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "podinfo:6.0.1"}]}}}}
    patched = apps.patch_namespaced_deployment("podinfo", NS, patch)  # a strategic merge patch by default
    assert [(c.name, c.image) for c in patched.spec.template.spec.containers] == [
        ("app", "podinfo:6.0.1"),
        ("sidecar", "proxy:1"),
    ]
    assert patched.metadata.generation == 2 and patched.status.observed_generation == 2

    scale = apps.patch_namespaced_deployment_scale("podinfo", NS, {"spec": {"replicas": 0}})
    assert scale.spec.replicas == 0 and scale.status.selector == "app=podinfo"
    scaled = apps.read_namespaced_deployment("podinfo", NS)
    assert scaled.spec.replicas == 0 and scaled.metadata.generation == 3

    custom = kubernetes.client.CustomObjectsApi(k8s_client)
    custom.create_namespaced_custom_object("coalmine.dev", "v1alpha1", NS, "canaries", _canary())
    with pytest.raises(ApiException) as exc:  # custom resources don't accept strategic merge patches
        custom.patch_namespaced_custom_object(
            "coalmine.dev",
            "v1alpha1",
            NS,
            "canaries",
            "podinfo",
            {"spec": {"suspend": True}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert exc.value.status == 415


def test_kubeconfig_points_the_official_client_at_the_emulator(kubeconfig: Path) -> None:
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    with kubernetes.client.ApiClient(configuration) as client:
        names = {ns.metadata.name for ns in kubernetes.client.CoreV1Api(client).list_namespace().items}
    assert "default" in names


async def test_watch_resumes_from_a_resource_version_or_answers_gone() -> None:
    server = CoalmineEmulator(event_log_limit=3)
    async with serving(server) as url, aiohttp.ClientSession() as session:
        for index in range(5):
            server.create_object("v1/configmaps", {"metadata": {"name": f"cm{index}"}}, NS)
        path = f"{url}/api/v1/namespaces/{NS}/configmaps?watch=true&timeoutSeconds=0.2&resourceVersion="
        rv_of = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in server.list_objects("v1/configmaps")}

        async with session.get(path + rv_of["cm2"]) as response:
            events = [json.loads(line) for line in (await response.text()).splitlines()]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "cm3"), ("ADDED", "cm4")]

        async with session.get(path + rv_of["cm0"]) as response:  # older than the retained log
            (event,) = [json.loads(line) for line in (await response.text()).splitlines()]
        assert event["type"] == "ERROR" and event["object"]["code"] == 410


@pytest.mark.parametrize("fault_policy", [FaultPolicy(rate=0.1, seed=10, timeout_delay=0.01)])
def test_fault_injection_fails_the_configured_fraction_realistically(
    threaded_emulator: ThreadedEmulator, k8s_client: kubernetes.client.ApiClient, fault_policy: FaultPolicy
) -> None:
    core = kubernetes.client.CoreV1Api(k8s_client)
    threaded_emulator.create_object("v1/configmaps", {"metadata": {"name": "base"}}, NS)  # in-process: no faults
    calls = [  # (what, is_write, can_conflict) in a fixed order: one client, so the faults are reproducible
        ("create", True, False),
        ("read", False, False),
        ("replace", True, True),
        ("patch", True, False),
    ] * 100
    statuses: list[int] = []
    for index, (what, _, _) in enumerate(calls):
        try:
            if what == "create":
                core.create_namespaced_config_map(NS, {"metadata": {"name": f"cm-{index}"}})
            elif what == "read":
                core.read_namespace(NS)
            elif what == "replace":  # a PUT: the one kind of call here that a real server may answer 409
                core.replace_namespaced_config_map("base", NS, {"metadata": {"name": "base"}, "data": {"i": "1"}})
            else:
                core.patch_namespaced_config_map("base", NS, {"data": {"j": str(index)}})
            statuses.append(200)
        except ApiException as exc:
            statuses.append(exc.status)

    faults = threaded_emulator.emulator.faults
    failed = [status for status in statuses if status != 200]
    assert faults.eligible == len(calls) == 400
    assert 0.06 <= len(failed) / 400 <= 0.14  # ±4 standard deviations around 10 %
    assert faults.total_injected == len(failed) and sorted(set(failed)) == [409, 500, 504]
    assert all(calls[i][0] == "replace" for i, status in enumerate(statuses) if status == 409)

    created = {o["metadata"]["name"] for o in threaded_emulator.list_objects("v1/configmaps", NS)}

    def names(status: int) -> set[str]:
        return {f"cm-{i}" for i, s in enumerate(statuses) if s == status and calls[i][0] == "create"}

    assert names(200) <= created and not names(500) & created  # a 500 is never applied ...
    assert names(504) & created and names(504) - created  # ... a timeout is, sometimes (a lost reply)

    replay = FaultInjector(fault_policy)  # the same seed draws the same faults for the same call sequence
    drawn = [replay.draw(plural="configmaps", is_write=w, is_watch=False, can_conflict=c) for _, w, c in calls]
    assert [fault is not None for fault in drawn] == [status != 200 for status in statuses]


@pytest.mark.looptime
async def test_a_kopf_operator_runs_against_the_emulator(emulator: CoalmineEmulator) -> None:
    registry = kopf.OperatorRegistry()
    deleted: list[str] = []

    @kopf.on.create("coalmine.dev", "v1alpha1", "canaries", registry=registry)
    def initialise(name: str, patch: kopf.Patch, **_: Any) -> None:
        patch.status["phase"] = "Initialized"

    @kopf.on.delete("coalmine.dev", "v1alpha1", "canaries", registry=registry)
    def finalise(name: str, **_: Any) -> None:
        deleted.append(name)

    async with running_operator(emulator, registry=registry, wait_for=[CANARIES]):
        emulator.create_object(CANARIES, _canary())
        await _eventually(
            lambda: (
                (emulator.read_object(CANARIES, NS, "podinfo") or {}).get("status", {}).get("phase") == "Initialized"
            )
        )
        stored = emulator.read_object(CANARIES, NS, "podinfo")
        assert stored is not None and stored["metadata"]["finalizers"]  # kopf's, for the delete handler
        assert stored["metadata"]["generation"] == 1

        started = time.monotonic()
        await asyncio.sleep(150)  # fake time: kopf's watches time out (60 s) and resume from their resourceVersion
        assert time.monotonic() - started < 10
        resumed = [  # iterating a kmock handler yields the requests it served
            r
            for r in emulator
            if r.action == kmock.action.WATCH and r.resource == CANARY_RESOURCE and r.params.get("resourceVersion")
        ]
        assert len(resumed) >= 2  # every server-side timeout was followed by a resumed watch

        emulator.delete_object(CANARIES, NS, "podinfo")  # held by the finalizer until kopf has run
        await _eventually(lambda: emulator.read_object(CANARIES, NS, "podinfo") is None)
        assert deleted == ["podinfo"]


async def _eventually(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


async def test_kmock_reactions_still_override_the_emulator(emulator: CoalmineEmulator) -> None:
    emulator["get /api/v1/namespaces/kube-system"] << 418  # kmock's DSL: a test-specific answer
    async with aiohttp.ClientSession(str(emulator.url)) as session:
        async with session.get("/api/v1/namespaces/kube-system") as overridden:
            assert overridden.status == 418
        async with session.get("/api/v1/namespaces/default") as served:
            assert served.status == 200 and (await served.json())["metadata"]["name"] == "default"
