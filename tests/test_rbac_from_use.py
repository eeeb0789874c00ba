"""The chart's RBAC is derived from use: every (verb, group, resource) the operator — our adapters AND kopf — sends
during representative runs against the emulated API is granted, and nothing else is.

Two independent records are compared: ``KubeClient(recorder=...)`` sees every call our adapters make, and the
emulator's request log sees every request that arrives, kopf's included (its watches, finalizer and annotation
patches, status patches, CRD and namespace scans, peering keep-alives). The runs cover a whole rollout with the
objects that need extra permissions (ConfigMap and Secret copies, an HPA, a MetricTemplate whose provider has a
credentials Secret, an AlertProvider), a deletion with ``revertOnDeletion``, the leader election's Lease (acquired,
renewed, released: the chart's default HA, granted by a Role in the release namespace) and kopf's peering in both
modes (``ha.election=peering``).

One permission is not a request: creating an object whose ``ownerReference`` has ``blockOwnerDeletion: true``
needs ``update`` on the owner's ``finalizers`` subresource (the API server's OwnerReferencesPermissionEnforcement
admission plugin checks it). The test derives it from the bodies the operator sent.

BlueGreen: when ``crds/bluegreen.yaml`` exists, the same shell reconciles BlueGreens; the chart must then grant
``bluegreens`` exactly what ``canaries`` needs (kopf watches both; the rest follows from the shared reconcile).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kopf
import kubernetes.client
import pytest
import yaml
from emulator import CoalmineEmulator, operator_settings
from kopf._cogs.structs.credentials import Vault
from operator_harness import (
    CANARIES,
    CONFIGMAPS,
    DEPLOYMENTS,
    DESTINATION_RULES,
    HPAS,
    NS,
    OperatorRun,
    ScriptedPrometheus,
    canary,
    collect_kopf_sessions,
    deployment,
    new_image,
    scripted_prometheus,
    settle,
    test_config,
    wait_for,
    wait_phase,
)

from controller.kube.api import ApiCall
from controller.kube.client import KubeClient
from controller.operator.context import OperatorContext
from controller.operator.leader import ElectionConfig, LeaseElection
from controller.operator.runtime import build_registry, configure_settings

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "coalmine"
PEERING = "coalmine"
RELEASE_NAMESPACE = "coalmine-system"
Grant = tuple[str, str, str]  # (group, resource, verb)

pytestmark = pytest.mark.timeout(60)

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


# -- what was used -----------------------------------------------------------------------------------------------


def grants_from_requests(emulator: CoalmineEmulator) -> set[Grant]:
    """RBAC grants for every API request the emulator received (discovery paths need none)."""
    used: set[Grant] = set()
    for request in emulator._requests:
        resource = request.resource
        if resource is None or resource.plural is None:
            continue
        plural = f"{resource.plural}/{request.subresource}" if request.subresource else resource.plural
        method = str(request.method.value).upper()
        if method == "GET":
            watching = request.action is not None and str(request.action.value).lower() == "watch"
            verb = "watch" if watching else ("get" if request.name else "list")
        else:
            verb = _VERBS[method] if request.name or method == "POST" else "deletecollection"
        used.add((resource.group or "", plural, verb))
        if method in ("POST", "PUT", "PATCH") and isinstance(request.data, dict):
            used |= owner_finalizer_grants(request.data)
    return used


def owner_finalizer_grants(body: dict[str, Any]) -> set[Grant]:
    """``update`` on ``<owner plural>/finalizers`` for each blocking owner reference (see the module doc)."""
    plurals = {"Canary": "canaries", "BlueGreen": "bluegreens"}
    grants: set[Grant] = set()
    for ref in (body.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("blockOwnerDeletion") and ref.get("kind") in plurals:
            group = str(ref.get("apiVersion", "")).split("/")[0]
            grants.add((group, f"{plurals[ref['kind']]}/finalizers", "update"))
    return grants


def grants_from_calls(calls: Iterable[ApiCall]) -> set[Grant]:
    return {(call.group, call.resource, call.verb) for call in calls}


# -- what the chart grants ---------------------------------------------------------------------------------------


def flatten(rules: Iterable[dict[str, Any]]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    loaded = helm.Chart.load(CHART)
    yield loaded
    loaded.close()


def rendered_rules(chart: helm.Chart, values: dict[str, Any]) -> dict[str, set[Grant]]:
    """``{"<Kind>/<namespace>": grants}`` of every (Cluster)Role the chart renders with ``values``."""
    manifests = chart.render(values, name="coalmine", namespace="coalmine-system", is_install=True)
    roles: dict[str, set[Grant]] = {}
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc and doc.get("kind") in ("Role", "ClusterRole"):
                key = f"{doc['kind']}/{doc['metadata'].get('namespace', '')}"
                roles[key] = roles.get(key, set()) | flatten(doc.get("rules") or ())
    return roles


# -- the runs ----------------------------------------------------------------------------------------------------


def seed_world(emulator: CoalmineEmulator, prom: ScriptedPrometheus) -> None:
    """A target using a ConfigMap and a Secret, with an HPA; a MetricTemplate whose provider needs a Secret; an
    AlertProvider; and a Canary using all of them with ``revertOnDeletion``."""
    emulator.create_object(CONFIGMAPS, {"metadata": {"name": "settings"}, "data": {"mode": "fast"}}, NS)
    secrets = "v1/secrets"
    emulator.create_object(secrets, {"metadata": {"name": "token"}, "stringData": {"key": "s3cret"}}, NS)
    emulator.create_object(secrets, {"metadata": {"name": "prom-auth"}, "stringData": {"token": "t0ken"}}, NS)
    emulator.create_object(secrets, {"metadata": {"name": "hook-url"}, "stringData": {"address": prom.url}}, NS)
    target = deployment("podinfo", "podinfo:1", config_map="settings")
    target["spec"]["template"]["spec"]["containers"][0]["envFrom"].append({"secretRef": {"name": "token"}})
    emulator.create_object(DEPLOYMENTS, target, NS)
    hpa = {
        "metadata": {"name": "podinfo"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "minReplicas": 2,
            "maxReplicas": 4,
        },
    }
    emulator.create_object(HPAS, hpa, NS)
    # The user's apex Service exists already: Coalmine takes it over (an update).
    service = {"metadata": {"name": "podinfo"}, "spec": {"selector": {"app": "podinfo"}, "ports": [{"port": 80}]}}
    emulator.create_object("v1/services", service, NS)
    template = {
        "metadata": {"name": "success"},
        "spec": {
            "provider": {"type": "prometheus", "address": prom.url, "secretRef": {"name": "prom-auth"}},
            "query": (
                'sum(rate(istio_requests_total{reporter="destination", destination_workload_namespace='
                '"{{ namespace }}", destination_workload=~"{{ target }}", response_code!~"5.*"}[1m])) / '
                'sum(rate(istio_requests_total{reporter="destination", destination_workload_namespace='
                '"{{ namespace }}", destination_workload=~"{{ target }}"}[1m])) * 100'
            ),
        },
    }
    emulator.create_object("coalmine.dev/v1alpha1/metrictemplates", template, NS)
    provider = {"metadata": {"name": "team"}, "spec": {"type": "webhook", "secretRef": {"name": "hook-url"}}}
    emulator.create_object("coalmine.dev/v1alpha1/alertproviders", provider, NS)
    analysis = {
        "stepWeight": 50,
        "maxWeight": 50,
        "metrics": [
            {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
            {"name": "templated", "templateRef": {"name": "success"}, "thresholdRange": {"min": 99}},
        ],
        "alerts": [{"name": "team", "providerRef": {"name": "team"}}],
    }
    ref = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"}
    emulator.create_object(CANARIES, canary("podinfo", analysis=analysis, autoscalerRef=ref, revertOnDeletion=True), NS)
    # A second Canary routed by Gateway API: its HTTPRoute is created, updated by a spec edit and deleted.
    emulator.create_object(DEPLOYMENTS, deployment("web", "web:1"), NS)
    web = canary("web", provider="gatewayapi:v1", revertOnDeletion=True, analysis={"querySet": "istio"})
    emulator.create_object(CANARIES, web, NS)


async def full_rollout(emulator: CoalmineEmulator, run: OperatorRun) -> None:
    """Initialise (slowly: the HPA changes meanwhile), edit the routing, roll out a new image with changed
    configs, fail a few ticks, delete."""
    emulator.store.behaviour.deployments_ready = False  # the primary is slow to start: Initializing repeats
    await run.start()
    try:
        await wait_for("the primary HPA", lambda: emulator.read_object(HPAS, NS, "podinfo-primary"))
        emulator.patch_object(HPAS, NS, "podinfo", {"spec": {"maxReplicas": 5}})
        await wait_for(
            "the primary HPA refreshed",
            lambda: emulator.read_object(HPAS, NS, "podinfo-primary")["spec"]["maxReplicas"] == 5,
        )
        emulator.store.behaviour.deployments_ready = True
        settle(emulator, "podinfo-primary")
        await wait_phase(emulator, "podinfo", "Initialized")
        policy = {"trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}
        emulator.patch_object(CANARIES, NS, "podinfo", {"spec": {"service": policy}})
        new_image(emulator, "podinfo", "podinfo:2")
        emulator.patch_object(CONFIGMAPS, NS, "settings", {"data": {"mode": "safe"}})
        emulator.patch_object("v1/secrets", NS, "token", {"data": {"key": "bmV3"}})
        await wait_phase(emulator, "podinfo", "Succeeded", timeout=30)
        assert emulator.read_object(CONFIGMAPS, NS, "settings-primary")["data"] == {"mode": "safe"}
        assert emulator.read_object(DESTINATION_RULES, NS, "podinfo-canary")["spec"]["trafficPolicy"]
        # A hand-edited status the tick cannot read: the handler fails and kopf retries it. kopf 1.45 posts no core
        # Event for that (``settings.posting.loggers`` is off), so the operator needs no core ``events`` grant.
        emulator.patch_object(CANARIES, NS, "podinfo", {"status": {"judge": "garbage"}}, subresource="status")
        await asyncio.sleep(3 * run.config.tick_seconds)
        emulator.patch_object(CANARIES, NS, "podinfo", {"status": {"judge": None}}, subresource="status")
        emulator.delete_object(CANARIES, NS, "podinfo")
        await wait_for("the Canary to go", lambda: emulator.read_object(CANARIES, NS, "podinfo") is None)
        settle(emulator, "web-primary")
        await wait_phase(emulator, "web", "Initialized")
        emulator.patch_object(CANARIES, NS, "web", {"spec": {"service": {"timeout": "7s"}}})
        routes = "gateway.networking.k8s.io/v1/httproutes"
        await wait_for(
            "the HTTPRoute updated",
            lambda: (
                (emulator.read_object(routes, NS, "web") or {}).get("spec", {}).get("rules", [{}])[-1].get("timeouts")
            ),
        )
        emulator.delete_object(CANARIES, NS, "web")
        await wait_for("the HTTPRoute to go", lambda: emulator.read_object(routes, NS, "web") is None)
    finally:
        await run.stop()


@contextlib.asynccontextmanager
async def peered_operator(emulator: CoalmineEmulator, *, clusterwide: bool) -> AsyncIterator[None]:
    """kopf with peering, as the chart runs it with ``ha.enabled`` (``running_operator`` is standalone only)."""
    config = test_config()
    configuration = kubernetes.client.Configuration(host=str(emulator.url).rstrip("/"))
    ctx = OperatorContext(config=config, api=KubeClient.from_configuration(configuration))
    settings = operator_settings()
    configure_settings(settings, peering=PEERING, priority=100)
    settings.peering.lifetime = 2
    vault = Vault()
    await vault.populate({"emulator": kopf.ConnectionInfo(server=str(emulator.url).rstrip("/"))})
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=build_registry(config),
            settings=settings,
            standalone=False,
            peering_name=PEERING,
            priority=100,
            clusterwide=clusterwide,
            namespaces=() if clusterwide else (NS,),
            stop_flag=stop,
            ready_flag=ready,
            vault=vault,
            memo=kopf.Memo(ctx=ctx),
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), timeout=10)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)
        collect_kopf_sessions()


def add_peering(emulator: CoalmineEmulator, *, clusterwide: bool) -> None:
    for body in yaml.safe_load_all((CHART / "crds" / "kopf-peering.yaml").read_text()):
        if body:
            emulator.add_crd(body)
    if clusterwide:
        emulator.create_object("kopf.dev/v1/clusterkopfpeerings", {"metadata": {"name": PEERING}})
    else:
        emulator.create_object("kopf.dev/v1/kopfpeerings", {"metadata": {"name": PEERING}}, NS)


async def peering_grants(emulator: CoalmineEmulator, *, clusterwide: bool) -> set[Grant]:
    resource = "clusterkopfpeerings" if clusterwide else "kopfpeerings"
    add_peering(emulator, clusterwide=clusterwide)
    async with peered_operator(emulator, clusterwide=clusterwide):
        await wait_for(
            "a keep-alive",
            lambda: any(
                (r.resource is not None and r.resource.plural == resource and str(r.method.value).upper() == "PATCH")
                for r in emulator._requests
            ),
            timeout=10,
        )
    return {g for g in grants_from_requests(emulator) if g[0] == "kopf.dev"}


async def lease_grants(emulator: CoalmineEmulator) -> set[Grant]:
    """What ``--leader-elect`` sends: the Lease created, renewed, then released on shutdown."""
    configuration = kubernetes.client.Configuration(host=str(emulator.url).rstrip("/"))
    election = ElectionConfig(
        "coalmine", RELEASE_NAMESPACE, "pod-1", lease_duration_s=1.0, renew_deadline_s=0.6, retry_period_s=0.1
    )
    elector = LeaseElection(KubeClient.from_configuration(configuration, timeout_s=0.3), election)
    elector.start()
    lease = "coordination.k8s.io/v1/leases"

    def renewed() -> bool:
        found = emulator.read_object(lease, RELEASE_NAMESPACE, "coalmine")
        return bool(found) and int(found["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])

    await wait_for("the Lease", lambda: emulator.read_object(lease, RELEASE_NAMESPACE, "coalmine"), timeout=10)
    created = emulator.read_object(lease, RELEASE_NAMESPACE, "coalmine")
    await wait_for("a renewal", renewed, timeout=10)
    await elector.aclose()
    assert emulator.read_object(lease, RELEASE_NAMESPACE, "coalmine")["spec"]["holderIdentity"] == ""
    return {g for g in grants_from_requests(emulator) if g[0] == "coordination.k8s.io"}


def mirror_bluegreens(grants: set[Grant]) -> set[Grant]:
    """The ``bluegreens`` grants matching the ``canaries`` ones (see the module doc), if BlueGreen is served."""
    if not (ROOT / "crds" / "bluegreen.yaml").exists():
        return grants
    mirrored = {(g, r.replace("canaries", "bluegreens"), v) for g, r, v in grants if r.startswith("canaries")}
    return grants | mirrored


def explain(expected: set[Grant], granted: set[Grant]) -> str:
    missing = sorted(expected - granted)
    extra = sorted(granted - expected)
    return f"missing from the chart: {json.dumps(missing)}; granted but never used: {json.dumps(extra)}"


# -- the tests ---------------------------------------------------------------------------------------------------


async def test_cluster_mode_cluster_role_grants_exactly_what_the_operator_uses(
    emulator: CoalmineEmulator, chart: helm.Chart
) -> None:
    emulator.request_log_limit = None
    calls: list[ApiCall] = []
    with scripted_prometheus() as prom:
        seed_world(emulator, prom)
        run = OperatorRun(emulator, test_config(prom), recorder=calls.append, clusterwide=True)
        await full_rollout(emulator, run)
    ours = grants_from_calls(calls)
    seen = grants_from_requests(emulator)
    assert ours, "the recorder saw our adapters' calls"
    assert ours <= seen, f"the emulator saw every call the recorder did: {sorted(ours - seen)}"
    assert ("coalmine.dev", "canaries", "watch") in seen - ours, "kopf's own requests are in the log"
    used = mirror_bluegreens(seen)
    leases = await lease_grants(emulator)
    peering = await peering_grants(emulator, clusterwide=True)

    roles = rendered_rules(chart, {})
    assert sorted(roles) == ["ClusterRole/", f"Role/{RELEASE_NAMESPACE}"]
    assert roles["ClusterRole/"] == used, explain(used, roles["ClusterRole/"])
    assert roles[f"Role/{RELEASE_NAMESPACE}"] == leases, explain(leases, roles[f"Role/{RELEASE_NAMESPACE}"])
    peered = rendered_rules(chart, {"ha": {"election": "peering"}})
    assert list(peered) == ["ClusterRole/"]
    assert peered["ClusterRole/"] == used | peering, explain(used | peering, peered["ClusterRole/"])


async def test_namespaced_mode_roles_grant_exactly_what_the_operator_uses(
    emulator: CoalmineEmulator, chart: helm.Chart
) -> None:
    emulator.request_log_limit = None
    with scripted_prometheus() as prom:
        seed_world(emulator, prom)
        run = OperatorRun(emulator, test_config(prom), clusterwide=False)
        await full_rollout(emulator, run)
    used = mirror_bluegreens(grants_from_requests(emulator))
    leases = await lease_grants(emulator)
    peering = await peering_grants(emulator, clusterwide=False)
    cluster_scoped = {"customresourcedefinitions", "namespaces"}
    in_namespace = {g for g in used if g[1] not in cluster_scoped}
    cluster_wide = {g for g in used if g[1] in cluster_scoped}

    watch = {"mode": "namespaced", "namespaces": [NS]}
    roles = rendered_rules(chart, {"watch": watch})
    assert sorted(roles) == ["ClusterRole/", f"Role/{RELEASE_NAMESPACE}", f"Role/{NS}"]
    assert roles[f"Role/{NS}"] == in_namespace, explain(in_namespace, roles[f"Role/{NS}"])
    assert roles["ClusterRole/"] == cluster_wide, explain(cluster_wide, roles["ClusterRole/"])
    assert roles[f"Role/{RELEASE_NAMESPACE}"] == leases, explain(leases, roles[f"Role/{RELEASE_NAMESPACE}"])
    peered = rendered_rules(chart, {"watch": watch, "ha": {"election": "peering"}})
    assert sorted(peered) == ["ClusterRole/", f"Role/{NS}"]
    assert peered[f"Role/{NS}"] == in_namespace | peering, explain(in_namespace | peering, peered[f"Role/{NS}"])
