"""The pure Kubernetes builders: what Coalmine would create from a user's Deployment, validated against the
Kubernetes 1.30 OpenAPI schema (strict: unknown fields are errors), plus revision hashing, config tracking and
readiness."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import kubernetes_validate
import pytest

from controller.kube.errors import MissingConfig, TargetInvalid
from controller.kube.objects import (
    CONFIGS_CHECKSUM_ANNOTATION,
    PROMOTED_HASH_ANNOTATION,
    build_event,
    build_primary_config,
    build_primary_deployment,
    build_primary_hpa,
    build_services,
    config_checksum,
    pod_template_hash,
    readiness,
    readiness_percent,
    referenced_configs,
    selector_label,
    tracked_configs,
)
from controller.rollout.spec import CanarySpec, parse_canary_spec

K8S = "1.30"
CANARY = {"apiVersion": "coalmine.dev/v1alpha1", "kind": "Canary", "metadata": {"name": "podinfo", "uid": "u-1"}}


def valid(obj: dict[str, Any]) -> dict[str, Any]:
    """Validate like the API server's schema would (strict), and return the object for further asserts."""
    kubernetes_validate.validate(obj, K8S, strict=True)
    return obj


def deployment(**changes: Any) -> dict[str, Any]:
    dep: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "podinfo",
            "namespace": "test",
            "generation": 2,
            "labels": {"app": "podinfo", "app.kubernetes.io/instance": "argo-app", "team": "a"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "deployment.kubernetes.io/revision": "3",
                "owner": "team-a",
            },
        },
        "spec": {
            "replicas": 2,
            "minReadySeconds": 5,
            "revisionHistoryLimit": 4,
            "progressDeadlineSeconds": 60,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {
                "metadata": {
                    "labels": {"app": "podinfo", "version": "v1"},
                    "annotations": {"prometheus.io/scrape": "true"},
                },
                "spec": {
                    "initContainers": [
                        {"name": "init", "image": "busybox", "envFrom": [{"secretRef": {"name": "init-secret"}}]}
                    ],
                    "containers": [
                        {
                            "name": "podinfod",
                            "image": "ghcr.io/stefanprodan/podinfo:6.0.0",
                            "ports": [
                                {"name": "http", "containerPort": 9898},
                                {"name": "grpc", "containerPort": 9999},
                            ],
                            "env": [
                                {
                                    "name": "COLOR",
                                    "valueFrom": {"configMapKeyRef": {"name": "podinfo-env", "key": "color"}},
                                },
                                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "podinfo-token", "key": "t"}}},
                                {"name": "PLAIN", "value": "x"},
                            ],
                            "envFrom": [{"configMapRef": {"name": "podinfo-opt", "optional": True}}],
                        },
                        {"name": "istio-proxy", "image": "istio/proxyv2", "ports": [{"containerPort": 15090}]},
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "podinfo-files"}},
                        {"name": "tls", "secret": {"secretName": "podinfo-tls"}},
                        {
                            "name": "all",
                            "projected": {"sources": [{"configMap": {"name": "podinfo-projected"}}]},
                        },
                    ],
                },
            },
        },
        "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2},
    }
    for path, value in changes.items():
        node = dep
        *parents, leaf = path.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return dep


def canary_spec(**service: Any) -> CanarySpec:
    return parse_canary_spec(
        {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "autoscalerRef": {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "name": "podinfo",
                "primaryScalerReplicas": {"minReplicas": 3, "maxReplicas": 6},
            },
            "service": {"port": 9898, **service},
            "analysis": {"interval": "1m", "stepWeight": 10, "maxWeight": 50},
        }
    )


CONFIGMAPS = {
    name: {"metadata": {"name": name, "namespace": "test"}, "data": {"k": name}}
    for name in ("podinfo-env", "podinfo-files", "podinfo-projected")
}
SECRETS = {
    name: {"metadata": {"name": name, "namespace": "test"}, "type": "Opaque", "data": {"k": "dg=="}}
    for name in ("podinfo-token", "podinfo-tls", "init-secret")
}


# -- primary Deployment ---------------------------------------------------------------------------------------


def test_primary_deployment_copies_the_pod_spec_under_a_primary_selector() -> None:
    target = deployment()
    primary = valid(build_primary_deployment(target, canary_spec(), CANARY))

    assert primary["metadata"]["name"] == "podinfo-primary"
    assert primary["metadata"]["namespace"] == "test"
    assert primary["spec"]["selector"] == {"matchLabels": {"app": "podinfo-primary"}}
    assert primary["spec"]["template"]["metadata"]["labels"] == {"app": "podinfo-primary", "version": "v1"}
    assert primary["spec"]["template"]["spec"]["containers"] == target["spec"]["template"]["spec"]["containers"]
    assert primary["spec"]["replicas"] == 2
    for key in ("strategy", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"):
        assert primary["spec"][key] == target["spec"][key]
    owner = primary["metadata"]["ownerReferences"][0]
    assert owner == {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "Canary",
        "name": "podinfo",
        "uid": "u-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert primary["metadata"]["annotations"][PROMOTED_HASH_ANNOTATION] == pod_template_hash(target)


def test_primary_metadata_drops_bookkeeping_and_gitops_tracking_but_keeps_the_rest() -> None:
    primary = build_primary_deployment(deployment(), canary_spec(), CANARY)
    meta = primary["metadata"]
    assert meta["labels"] == {"app": "podinfo-primary", "team": "a"}  # Argo CD's instance label is not copied
    assert "kubectl.kubernetes.io/last-applied-configuration" not in meta["annotations"]
    assert "deployment.kubernetes.io/revision" not in meta["annotations"]
    assert meta["annotations"]["owner"] == "team-a"
    # Pod labels are the user's business (selectors, dashboards): only the selector label is rewritten.
    assert primary["spec"]["template"]["metadata"]["annotations"] == {"prometheus.io/scrape": "true"}


def test_primary_replicas_are_at_least_one_and_can_be_pinned() -> None:
    assert build_primary_deployment(deployment(spec__replicas=0), canary_spec(), CANARY)["spec"]["replicas"] == 1
    assert build_primary_deployment(deployment(), canary_spec(), CANARY, replicas=7)["spec"]["replicas"] == 7


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({"app": "a", "name": "n", "app.kubernetes.io/name": "k"}, ("app", "a")),
        ({"name": "n", "app.kubernetes.io/name": "k"}, ("name", "n")),
        ({"app.kubernetes.io/name": "k", "tier": "web"}, ("app.kubernetes.io/name", "k")),
    ],
)
def test_selector_label_follows_flaggers_order(match: dict[str, str], expected: tuple[str, str]) -> None:
    assert selector_label(deployment(spec__selector={"matchLabels": match})) == expected


def test_a_target_without_a_known_selector_label_is_rejected_by_name() -> None:
    with pytest.raises(TargetInvalid, match=r"Deployment test/podinfo: .*app, name, app.kubernetes.io/name"):
        build_primary_deployment(deployment(spec__selector={"matchLabels": {"tier": "web"}}), canary_spec(), CANARY)


def test_primary_uses_primary_copies_of_tracked_configs_only() -> None:
    target = deployment()
    tracked = tracked_configs(target, CONFIGMAPS, SECRETS)
    primary = valid(build_primary_deployment(target, canary_spec(), CANARY, tracked=tracked))
    pod = primary["spec"]["template"]["spec"]
    app = pod["containers"][0]
    assert app["env"][0]["valueFrom"]["configMapKeyRef"]["name"] == "podinfo-env-primary"
    assert app["env"][1]["valueFrom"]["secretKeyRef"]["name"] == "podinfo-token-primary"
    assert app["envFrom"][0]["configMapRef"]["name"] == "podinfo-opt"  # optional and absent: left alone
    assert pod["initContainers"][0]["envFrom"][0]["secretRef"]["name"] == "init-secret-primary"
    assert pod["volumes"][0]["configMap"]["name"] == "podinfo-files-primary"
    assert pod["volumes"][1]["secret"]["secretName"] == "podinfo-tls-primary"
    assert pod["volumes"][2]["projected"]["sources"][0]["configMap"]["name"] == "podinfo-projected-primary"
    # The target itself is untouched.
    assert target["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] == "podinfo-files"


def test_a_config_only_change_changes_the_primary_pod_template_so_it_rolls() -> None:
    target = deployment()
    before = build_primary_deployment(
        target, canary_spec(), CANARY, tracked=tracked_configs(target, CONFIGMAPS, SECRETS)
    )
    edited = copy.deepcopy(CONFIGMAPS)
    edited["podinfo-env"]["data"] = {"k": "blue"}
    after = build_primary_deployment(target, canary_spec(), CANARY, tracked=tracked_configs(target, edited, SECRETS))
    before_ann = before["spec"]["template"]["metadata"]["annotations"][CONFIGS_CHECKSUM_ANNOTATION]
    after_ann = after["spec"]["template"]["metadata"]["annotations"][CONFIGS_CHECKSUM_ANNOTATION]
    assert before_ann != after_ann
    assert before["spec"]["template"]["spec"] == after["spec"]["template"]["spec"]


# -- Services ---------------------------------------------------------------------------------------------------


def test_services_apex_and_primary_select_primary_pods_canary_selects_the_target() -> None:
    spec = canary_spec(
        targetPort="http",
        appProtocol="http",
        apex={"labels": {"exposed": "yes"}, "annotations": {"a": "1"}},
        canary={"labels": {"role": "canary"}},
    )
    services = build_services(spec, deployment(), CANARY)
    for svc in services.all():
        valid(svc)
        assert svc["spec"]["type"] == "ClusterIP"
        assert svc["spec"]["ports"] == [
            {"name": "http", "protocol": "TCP", "port": 9898, "targetPort": "http", "appProtocol": "http"}
        ]
        assert svc["metadata"]["ownerReferences"][0]["name"] == "podinfo"
    assert [s["metadata"]["name"] for s in services.all()] == ["podinfo", "podinfo-primary", "podinfo-canary"]
    assert services.apex["spec"]["selector"] == {"app": "podinfo-primary"}
    assert services.primary["spec"]["selector"] == {"app": "podinfo-primary"}
    assert services.canary["spec"]["selector"] == {"app": "podinfo"}
    assert services.apex["metadata"]["labels"] == {"exposed": "yes", "app": "podinfo"}
    assert services.apex["metadata"]["annotations"] == {"a": "1"}
    assert services.canary["metadata"]["labels"] == {"role": "canary", "app": "podinfo-canary"}


def test_service_name_and_default_target_port() -> None:
    services = build_services(canary_spec(name="frontend", portName="grpc"), deployment(), CANARY)
    assert services.apex["metadata"]["name"] == "frontend"
    assert services.canary["metadata"]["name"] == "frontend-canary"
    assert services.apex["spec"]["ports"] == [{"name": "grpc", "protocol": "TCP", "port": 9898, "targetPort": 9898}]


def test_port_discovery_adds_other_container_ports_but_not_sidecars() -> None:
    services = build_services(canary_spec(portDiscovery=True), deployment(), CANARY)
    ports = valid(services.apex)["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in ports] == [("http", 9898), ("grpc", 9999)]


# -- revision hash ----------------------------------------------------------------------------------------------


def test_pod_template_hash_ignores_what_is_not_a_revision() -> None:
    base = pod_template_hash(deployment())
    assert pod_template_hash(deployment(spec__replicas=9)) == base
    reordered = deployment()
    template = reordered["spec"]["template"]
    reordered["spec"]["template"] = {"spec": template["spec"], "metadata": dict(reversed(template["metadata"].items()))}
    assert pod_template_hash(reordered) == base
    ours = deployment()
    ours["spec"]["template"]["metadata"]["annotations"]["coalmine.dev/configs-checksum"] = "abc"
    assert pod_template_hash(ours) == base
    no_annotations = deployment()
    no_annotations["spec"]["template"]["metadata"]["annotations"] = {}
    empty = deployment()
    del empty["spec"]["template"]["metadata"]["annotations"]
    assert pod_template_hash(no_annotations) == pod_template_hash(empty)


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="ghcr.io/stefanprodan/podinfo:6.0.1"),
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "NEW", "value": "1"}),
        lambda d: d["spec"]["template"]["metadata"]["labels"].update(version="v2"),
        lambda d: d["spec"]["template"]["metadata"]["annotations"].update({"kubectl.kubernetes.io/restartedAt": "now"}),
    ],
    ids=["image", "env", "pod-label", "restart"],
)
def test_pod_template_hash_changes_with_the_revision(edit: Any) -> None:
    changed = deployment()
    edit(changed)
    assert pod_template_hash(changed) != pod_template_hash(deployment())


# -- config tracking --------------------------------------------------------------------------------------------


def test_tracked_configs_cover_env_envfrom_volumes_projected_and_init_containers() -> None:
    tracked = tracked_configs(deployment(), CONFIGMAPS, list(SECRETS.values()))
    assert sorted(tracked) == [
        "configmap/podinfo-env",
        "configmap/podinfo-files",
        "configmap/podinfo-projected",
        "secret/init-secret",
        "secret/podinfo-tls",
        "secret/podinfo-token",
    ]
    assert tracked["configmap/podinfo-env"] == config_checksum(CONFIGMAPS["podinfo-env"])


def test_an_optional_config_that_exists_is_tracked_and_a_missing_required_one_is_an_error() -> None:
    with_optional = {**CONFIGMAPS, "podinfo-opt": {"metadata": {"name": "podinfo-opt"}, "data": {"x": "1"}}}
    assert "configmap/podinfo-opt" in tracked_configs(deployment(), with_optional, SECRETS)
    missing = dict(CONFIGMAPS)
    del missing["podinfo-files"]
    with pytest.raises(MissingConfig, match="ConfigMap test/podinfo-files used by Deployment test/podinfo"):
        tracked_configs(deployment(), missing, SECRETS)


def test_a_reference_is_optional_only_if_every_reference_is() -> None:
    dep = deployment()
    dep["spec"]["template"]["spec"]["volumes"].append({"name": "opt", "configMap": {"name": "podinfo-opt"}})
    refs = {ref.key: ref.optional for ref in referenced_configs(dep)}
    assert refs["configmap/podinfo-opt"] is False


def test_checksums_follow_content_not_metadata_and_tracking_can_be_disabled() -> None:
    config = {"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v"}}
    relabelled = {"metadata": {"name": "c", "labels": {"a": "2"}, "resourceVersion": "9"}, "data": {"k": "v"}}
    assert config_checksum(config) == config_checksum(relabelled)
    assert config_checksum(config) != config_checksum({**config, "data": {"k": "w"}})
    assert config_checksum(config) != config_checksum({**config, "binaryData": {"b": "AA=="}})
    disabled = copy.deepcopy(CONFIGMAPS)
    disabled["podinfo-env"]["metadata"]["annotations"] = {"coalmine.dev/config-tracking": "disabled"}
    tracked = tracked_configs(deployment(), disabled, SECRETS)
    assert "configmap/podinfo-env" not in tracked
    primary = build_primary_deployment(deployment(), canary_spec(), CANARY, tracked=tracked)
    env = primary["spec"]["template"]["spec"]["containers"][0]["env"][0]
    assert env["valueFrom"]["configMapKeyRef"]["name"] == "podinfo-env"  # shared, as the user asked


def test_primary_config_copies_content_and_is_never_immutable() -> None:
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "podinfo-env", "namespace": "test", "labels": {"a": "b"}, "resourceVersion": "5"},
        "data": {"color": "blue"},
        "binaryData": {"logo": "AA=="},
        "immutable": True,
    }
    copy_ = valid(build_primary_config(configmap, CANARY))
    assert copy_["metadata"]["name"] == "podinfo-env-primary"
    assert copy_["metadata"]["labels"] == {"a": "b"}
    assert "resourceVersion" not in copy_["metadata"]
    assert copy_["data"] == {"color": "blue"} and copy_["binaryData"] == {"logo": "AA=="}
    assert "immutable" not in copy_
    secret = valid(build_primary_config(SECRETS["podinfo-tls"]))  # a list item: no kind, but a type
    assert secret["kind"] == "Secret" and secret["type"] == "Opaque"
    assert "ownerReferences" not in secret["metadata"]


# -- HPA --------------------------------------------------------------------------------------------------------


def test_primary_hpa_targets_the_primary_with_primary_scaler_replicas() -> None:
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "podinfo", "namespace": "test", "labels": {"app": "podinfo"}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "minReplicas": 2,
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
        },
    }
    primary = valid(build_primary_hpa(hpa, canary_spec(), CANARY))
    assert primary["metadata"]["name"] == "podinfo-primary"
    assert primary["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "podinfo-primary",
    }
    assert (primary["spec"]["minReplicas"], primary["spec"]["maxReplicas"]) == (3, 6)
    assert primary["spec"]["metrics"] == hpa["spec"]["metrics"]
    assert primary["spec"]["behavior"] == hpa["spec"]["behavior"]
    plain = parse_canary_spec(
        {"targetRef": {"name": "podinfo"}, "autoscalerRef": {"name": "podinfo"}, "service": {"port": 80}}
    )
    assert (
        build_primary_hpa(hpa, plain)["spec"]["minReplicas"],
        build_primary_hpa(hpa, plain)["spec"]["maxReplicas"],
    ) == (2, 4)


# -- readiness --------------------------------------------------------------------------------------------------


def with_status(desired: int | None, generation: int = 2, **status: Any) -> dict[str, Any]:
    dep = deployment(spec__replicas=desired)
    dep["metadata"]["generation"] = generation
    dep["status"] = status
    return dep


@pytest.mark.parametrize(
    ("dep", "percent", "complete"),
    [
        (with_status(4, observedGeneration=2, replicas=4, updatedReplicas=4, availableReplicas=4), 100.0, True),
        (with_status(4, observedGeneration=2, replicas=4, updatedReplicas=4, availableReplicas=3), 75.0, False),
        # Rolling update: 2 new pods + 2 old ones, 3 available — at most 1 of them can be new.
        (with_status(4, observedGeneration=2, replicas=4, updatedReplicas=2, availableReplicas=3), 25.0, False),
        # The controller has not seen the latest spec: the status is about an older revision.
        (
            with_status(4, generation=3, observedGeneration=2, replicas=4, updatedReplicas=4, availableReplicas=4),
            0.0,
            False,
        ),
        (with_status(0, observedGeneration=2), 100.0, True),
        (with_status(None, observedGeneration=2, replicas=1, updatedReplicas=1, availableReplicas=1), 100.0, True),
        (with_status(2, observedGeneration=2), 0.0, False),
    ],
    ids=["ready", "one-unavailable", "rolling", "generation-lag", "zero-replicas", "default-replicas", "no-pods"],
)
def test_readiness_percent(dep: dict[str, Any], percent: float, complete: bool) -> None:
    assert readiness_percent(dep) == pytest.approx(percent)
    assert readiness(dep).complete is complete


def test_readiness_reports_a_stuck_rollout() -> None:
    dep = with_status(
        2,
        observedGeneration=2,
        replicas=3,
        updatedReplicas=1,
        availableReplicas=2,
        conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
    )
    result = readiness(dep)
    assert result.stuck and not result.complete
    assert "progress deadline" in result.message and "test/podinfo" in result.message


# -- Events -----------------------------------------------------------------------------------------------------


def test_events_are_valid_events_k8s_io_v1_about_the_canary() -> None:
    canary = {**CANARY, "metadata": {**CANARY["metadata"], "namespace": "test", "resourceVersion": "12"}}
    now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    event = valid(
        build_event(
            canary,
            reason="Advance",
            note="Advance podinfo.test canary weight 20",
            action="SetWeight",
            type_="Normal",
            now=now,
            instance="coalmine-0",
        )
    )
    assert event["eventTime"] == "2026-01-02T03:04:05.678901Z"
    assert event["reportingController"] == "coalmine.dev/operator"
    assert event["regarding"] == {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "Canary",
        "name": "podinfo",
        "namespace": "test",
        "uid": "u-1",
        "resourceVersion": "12",
    }
    assert event["metadata"] == {"generateName": "podinfo.", "namespace": "test"}
    long = build_event(canary, reason="R", note="é" * 2000, action="A", type_="Warning", now=now, instance="i")
    assert len(long["note"].encode()) <= 1024 and long["note"].endswith("...")
