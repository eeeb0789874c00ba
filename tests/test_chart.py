"""The Helm chart, rendered by Helm's own engine (helm-python-sdk: libhelm, no helm binary, no cluster, no network).

Every rendered object is checked against the Kubernetes 1.37 schemas (``kubernetes_validate``), CRD instances of
other groups against their own CRD schema or by shape, and the chart's behaviour users rely on is asserted: the
hardened pod, least-privilege RBAC bound where the operator watches, HA (a Lease, or kopf peering), the CRDs kept
identical to ``crds/``, ``values.schema.json`` refusing bad values, and a dashboard that only charts metrics the
operator exports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft7Validator

from controller.kube import client as kube_client
from controller.metrics import OperatorMetrics

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "coalmine"
K8S_VERSION = "1.37.0"
RELEASE, NAMESPACE = "coalmine", "coalmine-system"
KOPF_PEERING_CRDS = "kopf-peering.yaml"

Obj = dict[str, Any]

VALUE_SETS: dict[str, Obj] = {
    "default": {},
    "namespaced": {"watch": {"mode": "namespaced", "namespaces": ["team-a", "team-b"]}},
    "ha-off": {"ha": {"enabled": False}},
    "servicemonitor": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}}}},
    "namespaced-ha-off": {"watch": {"mode": "namespaced", "namespaces": ["team-a"]}, "ha": {"enabled": False}},
    "selector": {"selector": ["shard=a", "example.com/team"]},
    "peering": {"ha": {"election": "peering"}},
    "namespaced-peering": {"watch": {"mode": "namespaced", "namespaces": ["team-a"]}, "ha": {"election": "peering"}},
}

LEADER_ROLE = "coalmine-leader-election"


def watch_roles(objects: list[Obj]) -> list[Obj]:
    """The Roles granting what the operator does where it watches (not the leader election's own Role)."""
    return [r for r in find(objects, "Role") if r["metadata"]["name"] != LEADER_ROLE]


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    loaded = helm.Chart.load(CHART)
    yield loaded
    loaded.close()


def render(chart: helm.Chart, values: Obj) -> list[Obj]:
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[Obj] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def find(objects: list[Obj], kind: str, name: str | None = None, namespace: str | None = None) -> list[Obj]:
    return [
        o
        for o in objects
        if o["kind"] == kind
        and (name is None or o["metadata"]["name"] == name)
        and (namespace is None or o["metadata"].get("namespace") == namespace)
    ]


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    [found] = find(objects, kind, name)
    return found


def container(objects: list[Obj]) -> Obj:
    [operator] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(operator)


def grants(rules: list[Obj]) -> set[tuple[str, str, str]]:
    """Flatten RBAC rules into (group, resource, verb) triples."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def peering_crds() -> list[Obj]:
    return [doc for doc in yaml.safe_load_all((CHART / "crds" / KOPF_PEERING_CRDS).read_text()) if doc]


# -- every object is valid ---------------------------------------------------------------------------------------


def check_by_crd(obj: Obj) -> None:
    """A kopf peering object: validated against the CRD the chart ships for it."""
    group = obj["apiVersion"].split("/")[0]
    [crd] = [c for c in peering_crds() if c["spec"]["group"] == group and c["spec"]["names"]["kind"] == obj["kind"]]
    assert (crd["spec"]["scope"] == "Namespaced") == ("namespace" in obj["metadata"])
    [version] = crd["spec"]["versions"]
    assert obj["apiVersion"] == f"{group}/{version['name']}"
    Draft7Validator(version["schema"]["openAPIV3Schema"]).validate(obj)


def check_service_monitor(obj: Obj, objects: list[Obj]) -> None:
    """No ServiceMonitor schema ships with kubernetes_validate: check it selects the metrics Service's port."""
    spec = obj["spec"]
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    selected = [
        s
        for s in find(objects, "Service")
        if spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        and s["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
    ]
    assert len(selected) == 1, "the ServiceMonitor must select exactly the metrics Service"
    [endpoint] = spec["endpoints"]
    assert endpoint["port"] in {p["name"] for p in selected[0]["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


@pytest.mark.parametrize("case", sorted(VALUE_SETS))
def test_every_rendered_object_is_valid(chart: helm.Chart, case: str) -> None:
    objects = render(chart, VALUE_SETS[case])
    assert objects, "the chart rendered nothing"
    for obj in objects:
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        if group == "kopf.dev":
            check_by_crd(obj)
        elif group == "monitoring.coreos.com":
            check_service_monitor(obj, objects)
        else:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    names = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(names) == len(set(names)), "two rendered objects share kind, namespace and name"


def test_helm_lint_finds_no_errors() -> None:
    report = helm.lint(CHART, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


# -- CRDs ----------------------------------------------------------------------------------------------------------


def test_chart_crds_are_the_repository_crds_byte_for_byte(chart: helm.Chart) -> None:
    repository = {p.name: p.read_bytes() for p in sorted((ROOT / "crds").glob("*.yaml"))}
    in_chart = {p.name: p.read_bytes() for p in sorted((CHART / "crds").glob("*.yaml"))}
    missing = sorted(set(repository) - set(in_chart))
    assert not missing, f"copy {missing} from crds/ into charts/coalmine/crds/"
    stale = sorted(name for name in repository if in_chart[name] != repository[name])
    assert not stale, f"charts/coalmine/crds/{stale} differ from crds/: copy them again"
    assert set(in_chart) - set(repository) == {KOPF_PEERING_CRDS}
    # And Helm sees them as the chart's CRDs (installed before any template).
    assert {Path(c["filename"]).name for c in chart.crds} == set(in_chart)


def test_kopf_peering_crds_are_valid_and_match_what_kopf_watches() -> None:
    crds = peering_crds()
    for crd in crds:
        kubernetes_validate.validate(crd, K8S_VERSION, strict=True)
    served = {(c["spec"]["group"], c["spec"]["names"]["plural"], c["spec"]["scope"]) for c in crds}
    assert served == {("kopf.dev", "clusterkopfpeerings", "Cluster"), ("kopf.dev", "kopfpeerings", "Namespaced")}


# -- the pod -------------------------------------------------------------------------------------------------------


def test_the_operator_pod_is_hardened(chart: helm.Chart) -> None:
    objects = render(chart, {})
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    operator = container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = operator["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    assert operator["resources"]["requests"]["cpu"] and operator["resources"]["requests"]["memory"]
    assert operator["resources"]["limits"]["memory"]
    # A read-only root still needs somewhere to write temporary files.
    assert {"name": "tmp", "mountPath": "/tmp"} in operator["volumeMounts"]


def test_probes_use_the_ports_the_operator_is_told_to_listen_on(chart: helm.Chart) -> None:
    operator = container(render(chart, {"metrics": {"port": 9100}, "liveness": {"port": 9101}}))
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    assert "--metrics-port=9100" in operator["args"] and ports["metrics"] == 9100
    assert "--liveness-port=9101" in operator["args"] and ports["healthz"] == 9101
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert operator["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}


def test_the_image_runs_as_the_user_the_chart_expects() -> None:
    """The Dockerfile and the chart agree: numeric non-root user, entry point, ports; the build context has it all."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert stages and all(image.startswith("python:3.11-slim") for image in stages)
    [user] = re.findall(r"^USER (\S+)", dockerfile, re.M)
    uid, gid = (int(x) for x in user.split(":"))
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert (uid, gid) == (values["podSecurityContext"]["runAsUser"], values["podSecurityContext"]["runAsGroup"])
    assert uid != 0
    assert re.search(r'^ENTRYPOINT \["coalmine", "run"\]$', dockerfile, re.M)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^coalmine = "controller\.cli\.main:app"$', pyproject, re.M)
    [exposed] = re.findall(r"^EXPOSE (.+)$", dockerfile, re.M)
    assert {int(p) for p in exposed.split()} == {values["metrics"]["port"], values["liveness"]["port"]}
    copied = [src for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M) for src in line.split()[:-1]]
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line[:1] == "!"}
    assert set(copied) <= allowed, "a COPY source is excluded from the build context by .dockerignore"
    # Everything the wheel is built from is copied: sources, the CRDs (package data) and the readme pyproject names.
    assert {"pyproject.toml", "README.md", "crds", "analysis", "controller"} <= set(copied)


# -- arguments, modes, HA ------------------------------------------------------------------------------------------


def test_cluster_mode_watches_everything_with_one_cluster_role(chart: helm.Chart) -> None:
    objects = render(chart, {})
    args = container(objects)["args"]
    assert "--all-namespaces" in args
    assert not [a for a in args if a.startswith("--namespace")]
    # Namespaced RBAC only for the leader election's Lease, in the release namespace.
    assert [(r["metadata"]["name"], r["metadata"]["namespace"]) for r in find(objects, "Role")] == [
        (LEADER_ROLE, NAMESPACE)
    ]
    assert [b["metadata"]["name"] for b in find(objects, "RoleBinding")] == [LEADER_ROLE]
    role = one(objects, "ClusterRole")
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "coalmine", "namespace": NAMESPACE}]
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "coalmine"


def test_selector_items_become_operator_selector_args(chart: helm.Chart) -> None:
    assert not [a for a in container(render(chart, {}))["args"] if a.startswith("--selector")]
    args = container(render(chart, VALUE_SETS["selector"]))["args"]
    assert [a for a in args if a.startswith("--selector")] == ["--selector=shard=a", "--selector=example.com/team"]


def test_namespaced_mode_grants_only_in_the_watched_namespaces(chart: helm.Chart) -> None:
    objects = render(chart, VALUE_SETS["namespaced"])
    args = container(objects)["args"]
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]
    assert "--all-namespaces" not in args
    roles = watch_roles(objects)
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for binding in [b for b in find(objects, "RoleBinding") if b["metadata"]["name"] != LEADER_ROLE]:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "coalmine", "namespace": NAMESPACE}]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "coalmine"}
    # Cluster-wide, only reads of cluster-scoped kinds: nothing that would reach into other namespaces.
    [cluster_role] = find(objects, "ClusterRole")
    assert grants(cluster_role["rules"]) == {
        ("apiextensions.k8s.io", "customresourcedefinitions", verb) for verb in ("list", "watch")
    } | {("", "namespaces", verb) for verb in ("list", "watch")}
    # With kopf peering, each namespace gets a KopfPeering the replicas meet in (kopf does not create it).
    assert find(objects, "KopfPeering") == [], "the default (a Lease) needs no peering object"
    peerings = find(render(chart, {**VALUE_SETS["namespaced"], "ha": {"election": "peering"}}), "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert {p["metadata"]["name"] for p in peerings} == {"coalmine"}
    assert find(objects, "ClusterKopfPeering") == []


def test_ha_runs_two_lease_elected_replicas_that_a_drain_cannot_take_together(chart: helm.Chart) -> None:
    objects = render(chart, {})
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    args = container(objects)["args"]
    assert [a for a in args if a.startswith(("--leader-elect", "--lease-", "--renew-", "--retry-"))] == [
        "--leader-elect",
        "--lease-name=coalmine",
        f"--lease-namespace={NAMESPACE}",
        "--lease-duration=15",
        "--renew-deadline=10",
        "--retry-period=2",
    ]
    assert not [a for a in args if a.startswith("--peering")], "kopf peering is not fencing: not with a Lease"
    assert find(objects, "ClusterKopfPeering") == [] and find(objects, "KopfPeering") == []
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    env = {e["name"]: e for e in container(objects)["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", "the Lease holder's identity"
    # Only its own Lease, only in the release namespace: never a grant on Leases cluster-wide (another
    # controller's leader election) nor on kopf's peering objects.
    role = one(objects, "Role", LEADER_ROLE)
    assert role["metadata"]["namespace"] == NAMESPACE
    assert grants(role["rules"]) == {("coordination.k8s.io", "leases", v) for v in ("create", "get", "update")}
    assert [r.get("resourceNames") for r in role["rules"] if "get" in r["verbs"]] == [["coalmine"]]
    binding = one(objects, "RoleBinding", LEADER_ROLE)
    assert binding["roleRef"]["name"] == LEADER_ROLE and binding["metadata"]["namespace"] == NAMESPACE
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "coalmine", "namespace": NAMESPACE}]
    cluster = grants(one(objects, "ClusterRole")["rules"])
    assert not [g for g in cluster if g[0] in ("coordination.k8s.io", "kopf.dev")]


def test_ha_with_kopf_peering_runs_two_peered_replicas(chart: helm.Chart) -> None:
    objects = render(chart, VALUE_SETS["peering"])
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert "--peering=coalmine" in container(objects)["args"]
    assert "--leader-elect" not in container(objects)["args"]
    assert one(objects, "ClusterKopfPeering", "coalmine")
    assert find(objects, "Role", LEADER_ROLE) == []
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    env = {e["name"]: e for e in container(objects)["env"]}
    assert env["POD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", "kopf's peer identity"
    assert ("kopf.dev", "clusterkopfpeerings", "patch") in grants(one(objects, "ClusterRole")["rules"])


@pytest.mark.parametrize("case", ["ha-off", "namespaced-ha-off"])
def test_without_ha_there_is_one_unpeered_replica(chart: helm.Chart, case: str) -> None:
    objects = render(chart, VALUE_SETS[case])
    assert one(objects, "Deployment")["spec"]["replicas"] == 1
    assert not [a for a in container(objects)["args"] if a.startswith("--peering")]
    assert find(objects, "ClusterKopfPeering") == [] and find(objects, "KopfPeering") == []
    assert find(objects, "PodDisruptionBudget") == [], "a PDB on one replica would only block node drains"
    assert "--leader-elect" not in container(objects)["args"]
    rules = [r for o in objects if o["kind"] in ("Role", "ClusterRole") for r in o["rules"]]
    assert not [g for g in grants(rules) if g[0] in ("kopf.dev", "coordination.k8s.io")]


# -- RBAC: least privilege -----------------------------------------------------------------------------------------


def test_rbac_is_least_privilege(chart: helm.Chart) -> None:
    for case, values in VALUE_SETS.items():
        rules = [r for o in render(chart, values) if o["kind"] in ("Role", "ClusterRole") for r in o["rules"]]
        flat = grants(rules)
        assert not [g for g in flat if "*" in g], f"{case}: wildcards grant more than the operator uses"
        assert not [g for g in flat if g[2] in ("escalate", "bind", "impersonate", "deletecollection")]
        assert not [g for g in flat if g[1] in ("secrets", "configmaps") and g[2] in ("list", "watch", "delete")], (
            "listing Secrets would read every Secret in the namespace"
        )
        assert not [g for g in flat if g[0] in ("rbac.authorization.k8s.io", "admissionregistration.k8s.io")]
        cluster_writes = {
            g
            for g in flat
            if g[1] in ("customresourcedefinitions", "namespaces") and g[2] not in ("get", "list", "watch")
        }
        assert not cluster_writes, f"{case}: the operator never changes cluster-scoped objects"


def test_rbac_rules_do_not_depend_on_values(chart: helm.Chart) -> None:
    """WHAT is granted is one values-free helper; values only choose where it is bound."""
    cluster = grants(one(render(chart, {}), "ClusterRole")["rules"])
    for values in (VALUE_SETS["namespaced"], VALUE_SETS["namespaced-ha-off"]):
        objects = render(chart, values)
        in_namespace = {g for role in watch_roles(objects) for g in grants(role["rules"])}
        cluster_wide = grants(one(objects, "ClusterRole")["rules"])
        namespaced_only = {g for g in in_namespace if g[1] != "kopfpeerings"}
        expected = {g for g in cluster if g[1] not in ("customresourcedefinitions", "clusterkopfpeerings")}
        assert namespaced_only == expected
        assert {g for g in cluster_wide if g[1] == "customresourcedefinitions"} <= cluster


def test_rbac_grants_what_the_kube_client_and_istio_router_do(chart: helm.Chart) -> None:
    """Every resource the adapters address is granted the verbs they send (the emulator suite narrows it further)."""
    flat = grants(one(render(chart, {}), "ClusterRole")["rules"])
    used = {  # tests/test_rbac_from_use.py derives the exact set from a recorded run
        kube_client.DEPLOYMENTS: ("get", "create", "update", "patch"),
        kube_client.SERVICES: ("get", "create", "update"),
        kube_client.CONFIGMAPS: ("get", "create", "update"),
        kube_client.SECRETS: ("get", "create", "update"),
        kube_client.HPAS: ("get", "create", "update"),
        kube_client.VIRTUAL_SERVICES: ("get", "create", "update", "delete"),
        kube_client.DESTINATION_RULES: ("get", "create", "update", "delete"),
        kube_client.EVENTS: ("create",),
        kube_client.CANARIES: ("patch",),
    }
    for resource, verbs in used.items():
        for verb in verbs:
            assert (resource.group, resource.plural, verb) in flat, f"{verb} {resource.plural} is not granted"
    assert ("coalmine.dev", "canaries/status", "patch") in flat
    # Owner references with blockOwnerDeletion on a Canary need update on its finalizers subresource.
    assert ("coalmine.dev", "canaries/finalizers", "update") in flat
    assert ("", "events", "create") not in flat, "kopf 1.45 posts no core Events unless asked (posting.loggers)"


# -- values.schema.json ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"watch": {"mode": "everywhere"}}, "/watch/mode"),
        ({"watch": {"mode": "namespaced"}}, "/watch/namespaces"),
        ({"watch": {"mode": "cluster", "namespaces": ["a"]}}, "/watch/namespaces"),
        ({"watch": {"mode": "namespaced", "namespaces": ["Team_A"]}}, "/watch/namespaces/0"),
        ({"operator": {"logFormat": "xml"}}, "/operator/logFormat"),
        ({"ha": {"enabled": False}, "replicaCount": 2}, "/replicaCount"),
        ({"ha": {"election": "raft"}}, "/ha/election"),
        ({"ha": {"renewDeadlineSeconds": 0}}, "/ha/renewDeadlineSeconds"),
        ({"metrics": {"port": 70000}}, "/metrics/port"),
        ({"metrics": {"serviceMonitor": {"interval": "30 seconds"}}}, "/metrics/serviceMonitor/interval"),
        ({"replicas": 2}, "replicas"),
        ({"selector": ["shard=a=b"]}, "/selector/0"),
        ({"selector": "shard=a"}, "/selector"),
    ],
)
def test_values_schema_rejects_bad_values(chart: helm.Chart, values: Obj, complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(complaint)):
        chart.validate_schema(chart.merge_values(values))
    with pytest.raises(helm.HelmValuesError):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


def test_values_schema_accepts_every_documented_value_set(chart: helm.Chart) -> None:
    for values in VALUE_SETS.values():
        chart.validate_schema(chart.merge_values(values))


# -- metrics Service, ServiceMonitor, dashboard ---------------------------------------------------------------------


def test_service_monitor_only_when_asked(chart: helm.Chart) -> None:
    assert find(render(chart, {}), "ServiceMonitor") == []
    monitor = one(render(chart, VALUE_SETS["servicemonitor"]), "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    with pytest.raises(helm.HelmRenderError, match=r"metrics\.service\.enabled"):
        render(chart, {"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}})


def dashboard(chart: helm.Chart) -> Obj:
    config_map = one(render(chart, {}), "ConfigMap", "coalmine-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    loaded: Obj = json.loads(config_map["data"]["coalmine.json"])
    return loaded


def expressions(board: Mapping[str, Any]) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p.get("targets", ())]


def test_dashboard_charts_only_metrics_the_operator_exports(chart: helm.Chart) -> None:
    board = dashboard(chart)
    exported = {
        sample.name for family in OperatorMetrics(version="x").registry.collect() for sample in family.samples
    } | {
        f"{family.name}{suffix}"
        for family in OperatorMetrics(version="x").registry.collect()
        for suffix in ("", "_total", "_bucket", "_count", "_sum")
    }
    used = {name for expr in expressions(board) for name in re.findall(r"\bcoalmine_[a-z_]+\b", expr)}
    assert used, "the dashboard queries nothing"
    assert used <= exported, f"the dashboard queries metrics nobody exports: {sorted(used - exported)}"
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for topic in ("phase", "weight", "e-value", "p-value", "no-data", "duration"):
        assert topic in titles, f"no panel about {topic}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus) is not installed")
def test_dashboard_queries_are_valid_promql(chart: helm.Chart, tmp_path: Path) -> None:
    """promtool parses every panel query (Grafana's variables replaced by what Grafana would substitute)."""
    grafana = {"$namespace": ".*", "$__rate_interval": "1m", "${datasource}": ""}
    rules = []
    for n, expr in enumerate(expressions(dashboard(chart))):
        for variable, replacement in grafana.items():
            expr = expr.replace(variable, replacement)
        rules.append({"record": f"coalmine:dashboard_query_{n}", "expr": expr})
    rule_file = tmp_path / "dashboard-rules.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- sharding -------------------------------------------------------------------------------------------------------


def _check_valid(objects: list[Obj]) -> None:
    for obj in objects:
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        if group == "kopf.dev":
            check_by_crd(obj)
        elif group == "monitoring.coreos.com":
            check_service_monitor(obj, objects)
        else:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    names = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(names) == len(set(names)), "two rendered objects share kind, namespace and name"


def test_one_shard_renders_exactly_what_an_unsharded_release_does(chart: helm.Chart) -> None:
    for case, values in VALUE_SETS.items():
        sharded = chart.render({**values, "sharding": {"shards": 1}}, name=RELEASE, namespace=NAMESPACE)
        assert sharded == chart.render(values, name=RELEASE, namespace=NAMESPACE), case
    assert yaml.safe_load((CHART / "values.yaml").read_text())["sharding"] == {"shards": 1}


@pytest.mark.parametrize("mode", ["cluster", "namespaced"])
def test_three_shards_are_three_elected_pairs_each_with_its_shard(chart: helm.Chart, mode: str) -> None:
    watch: Obj = {"mode": mode, "namespaces": ["team-a", "team-b"] if mode == "namespaced" else []}
    objects = render(chart, {"sharding": {"shards": 3}, "watch": watch})
    _check_valid(objects)
    deployments = sorted(find(objects, "Deployment"), key=lambda d: d["metadata"]["name"])
    assert [d["metadata"]["name"] for d in deployments] == [f"coalmine-shard-{i}" for i in range(3)]
    selectors = []
    for index, deployment in enumerate(deployments):
        assert deployment["spec"]["replicas"] == 2
        [operator] = deployment["spec"]["template"]["spec"]["containers"]
        args = operator["args"]
        assert [a for a in args if a.startswith("--shard")] == [f"--shard={index}/3"]
        assert [a for a in args if a.startswith("--lease-name=")] == [f"--lease-name=coalmine-shard-{index}"]
        assert not [a for a in args if a.startswith("--peering")]
        match = deployment["spec"]["selector"]["matchLabels"]
        assert match.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        selectors.append(match)
        anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        [term] = anti["preferredDuringSchedulingIgnoredDuringExecution"]
        assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == match, "spread each shard's own pair"
    # No Deployment's selector matches another shard's pods.
    for i, mine in enumerate(selectors):
        for j, pods in enumerate(deployments):
            labels = pods["spec"]["template"]["metadata"]["labels"]
            assert (mine.items() <= labels.items()) == (i == j)
    # One PodDisruptionBudget per shard, over that shard's pods only.
    pdbs = {p["metadata"]["name"]: p for p in find(objects, "PodDisruptionBudget")}
    assert sorted(pdbs) == [f"coalmine-shard-{i}" for i in range(3)]
    for index in range(3):
        assert pdbs[f"coalmine-shard-{index}"]["spec"]["selector"]["matchLabels"] == selectors[index]
    # Each shard's Lease may be renewed, and no other: one leader per shard.
    [renew] = [r for r in one(objects, "Role", LEADER_ROLE)["rules"] if "update" in r["verbs"]]
    assert renew["resourceNames"] == [f"coalmine-shard-{i}" for i in range(3)]
    # With kopf peering, a peering object per shard (in each watched namespace when namespaced).
    kind = "ClusterKopfPeering" if mode == "cluster" else "KopfPeering"
    assert find(objects, kind) == []
    peered = render(chart, {"sharding": {"shards": 3}, "watch": watch, "ha": {"election": "peering"}})
    for index, deployment in enumerate(sorted(find(peered, "Deployment"), key=lambda d: d["metadata"]["name"])):
        [operator] = deployment["spec"]["template"]["spec"]["containers"]
        assert [a for a in operator["args"] if a.startswith("--peering")] == [f"--peering=coalmine-shard-{index}"]
    peerings = [(p["metadata"].get("namespace"), p["metadata"]["name"]) for p in find(peered, kind)]
    namespaces = [None] if mode == "cluster" else ["team-a", "team-b"]
    assert sorted(peerings, key=str) == sorted(
        [(ns, f"coalmine-shard-{i}") for ns in namespaces for i in range(3)], key=str
    )
    # The metrics Service still reaches every shard's pods.
    service = one(objects, "Service")
    for deployment in deployments:
        assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_shards_without_ha_are_single_unpeered_replicas(chart: helm.Chart) -> None:
    objects = render(chart, {"sharding": {"shards": 2}, "ha": {"enabled": False}})
    _check_valid(objects)
    deployments = find(objects, "Deployment")
    assert len(deployments) == 2
    for deployment in deployments:
        assert deployment["spec"]["replicas"] == 1
        [operator] = deployment["spec"]["template"]["spec"]["containers"]
        assert not [a for a in operator["args"] if a.startswith("--peering")]
    assert find(objects, "ClusterKopfPeering") == [] and find(objects, "PodDisruptionBudget") == []


@pytest.mark.parametrize("shards", [0, "3", 1.5])
def test_values_schema_rejects_bad_shard_counts(chart: helm.Chart, shards: Any) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape("/sharding/shards")):
        chart.validate_schema(chart.merge_values({"sharding": {"shards": shards}}))


def test_webhook_signing_mounts_only_the_key_and_points_the_operator_at_it(chart: helm.Chart) -> None:
    values = {
        "webhookSigning": {"secretName": "coalmine-webhook-signing", "secretKey": "hmac"},
        "sharding": {"shards": 2},
    }
    objects = render(chart, values)
    deployments = find(objects, "Deployment")
    assert len(deployments) == 2
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        [operator] = pod["containers"]
        [arg] = [a for a in operator["args"] if a.startswith("--hook-secret-file=")]
        path = arg.split("=", 1)[1]
        [mount] = [m for m in operator["volumeMounts"] if m["name"] == "webhook-signing"]
        assert mount["readOnly"] is True and path == f"{mount['mountPath']}/hmac"
        [volume] = [v for v in pod["volumes"] if v["name"] == "webhook-signing"]
        assert volume["secret"]["secretName"] == "coalmine-webhook-signing"
        assert volume["secret"]["items"] == [{"key": "hmac", "path": "hmac"}]
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    unsigned = container(render(chart, {}))
    assert not [a for a in unsigned["args"] if a.startswith("--hook-secret-file")]
    assert [m["name"] for m in unsigned["volumeMounts"]] == ["tmp"]
