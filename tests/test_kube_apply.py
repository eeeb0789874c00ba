"""The appliers against an in-memory API: initialisation creates exactly the objects Flagger would (valid against
the Kubernetes 1.30 schema), a rerun writes nothing, a promotion rolls the primary, a user's Service is taken over
without becoming garbage-collectable."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
from fakekube import FakeKube

from controller.kube.apply import (
    apply_primary_configs,
    apply_primary_deployment,
    apply_primary_hpa,
    apply_services,
    read_readiness,
    read_target,
    read_tracked_configs,
    restore_target,
    scale,
)
from controller.kube.client import CONFIGMAPS, DEPLOYMENTS, HPAS, SECRETS, SERVICES
from controller.kube.errors import TargetInvalid
from controller.kube.objects import PROMOTED_HASH_ANNOTATION, pod_template_hash
from controller.rollout.spec import CanarySpec, parse_canary_spec

NS = "test"
CANARY = {"apiVersion": "coalmine.dev/v1alpha1", "kind": "Canary", "metadata": {"name": "podinfo", "uid": "u-1"}}


def spec_of(hpa: bool = True) -> CanarySpec:
    raw: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898},
        "analysis": {"interval": "1m", "stepWeight": 10, "maxWeight": 50},
    }
    if hpa:
        raw["autoscalerRef"] = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"}
    return parse_canary_spec(raw)


def target(image: str = "podinfo:6.0.0", replicas: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": "podinfo", "labels": {"app": "podinfo"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {
                "metadata": {"labels": {"app": "podinfo"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "envFrom": [
                                {"configMapRef": {"name": "podinfo-env"}},
                                {"secretRef": {"name": "podinfo-token"}},
                            ],
                        }
                    ]
                },
            },
        },
    }


def seeded(spec_hpa: bool = True) -> FakeKube:
    kube = FakeKube()
    kube.put(DEPLOYMENTS, NS, target())
    kube.put(CONFIGMAPS, NS, {"metadata": {"name": "podinfo-env"}, "data": {"COLOR": "blue", "SIZE": "m"}})
    kube.put(SECRETS, NS, {"metadata": {"name": "podinfo-token"}, "type": "Opaque", "data": {"T": "dA=="}})
    if spec_hpa:
        kube.put(
            HPAS,
            NS,
            {
                "metadata": {"name": "podinfo"},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                    "minReplicas": 2,
                    "maxReplicas": 5,
                },
            },
        )
    return kube


def initialise(kube: FakeKube, spec: CanarySpec) -> dict[str, str]:
    live_target = read_target(kube, NS, spec)
    tracked = apply_primary_configs(kube, NS, live_target, CANARY)
    apply_primary_deployment(kube, NS, live_target, spec, CANARY, tracked)
    apply_services(kube, NS, spec, live_target, CANARY)
    apply_primary_hpa(kube, NS, spec, CANARY)
    return tracked


def test_initialisation_creates_the_primary_world_once() -> None:
    kube, spec = seeded(), spec_of()
    tracked = initialise(kube, spec)
    assert sorted(tracked) == ["configmap/podinfo-env", "secret/podinfo-token"]
    assert sorted((verb, kind, name) for verb, kind, name in kube.writes) == [
        ("create", "ConfigMap", "podinfo-env-primary"),
        ("create", "Deployment", "podinfo-primary"),
        ("create", "HorizontalPodAutoscaler", "podinfo-primary"),
        ("create", "Secret", "podinfo-token-primary"),
        ("create", "Service", "podinfo"),
        ("create", "Service", "podinfo-canary"),
        ("create", "Service", "podinfo-primary"),
    ]
    for key, obj in kube.objects.items():
        assert kubernetes_validate.validate(obj, "1.30", strict=True) == "1.30", key
    primary = kube.get(DEPLOYMENTS, NS, "podinfo-primary")
    assert primary is not None
    env_from = primary["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert env_from == [
        {"configMapRef": {"name": "podinfo-env-primary"}},
        {"secretRef": {"name": "podinfo-token-primary"}},
    ]
    kube.writes.clear()
    initialise(kube, spec)
    assert kube.writes == []  # a rerun converges without writing


def test_promotion_rolls_the_primary_to_the_new_template_and_configs() -> None:
    kube, spec = seeded(), spec_of()
    initialise(kube, spec)
    # An HPA scaled the primary up meanwhile; then a new revision arrives with a config change.
    scale(kube, NS, "podinfo-primary", 4)
    new_target = kube.get(DEPLOYMENTS, NS, "podinfo")
    assert new_target is not None
    new_target["spec"]["template"]["spec"]["containers"][0]["image"] = "podinfo:6.0.1"
    kube.replace(DEPLOYMENTS, NS, new_target)
    env = kube.get(CONFIGMAPS, NS, "podinfo-env")
    assert env is not None
    env["data"] = {"COLOR": "green"}  # SIZE removed
    kube.replace(CONFIGMAPS, NS, env)

    live_target = read_target(kube, NS, spec)
    before = kube.get(DEPLOYMENTS, NS, "podinfo-primary")
    assert apply_primary_deployment(kube, NS, live_target, spec, CANARY, {}, promote=False) == before

    tracked = apply_primary_configs(kube, NS, live_target, CANARY)
    assert tracked == read_tracked_configs(kube, NS, live_target)
    promoted = apply_primary_deployment(kube, NS, live_target, spec, CANARY, tracked, promote=True)
    assert promoted["spec"]["template"]["spec"]["containers"][0]["image"] == "podinfo:6.0.1"
    assert promoted["spec"]["replicas"] == 4  # the HPA owns it
    assert promoted["spec"]["selector"] == {"matchLabels": {"app": "podinfo-primary"}}
    assert promoted["metadata"]["annotations"][PROMOTED_HASH_ANNOTATION] == pod_template_hash(live_target)
    assert promoted["metadata"]["generation"] > before["metadata"]["generation"]  # type: ignore[index]
    copy_ = kube.get(CONFIGMAPS, NS, "podinfo-env-primary")
    assert copy_ is not None and copy_["data"] == {"COLOR": "green"}


def test_without_an_hpa_the_primary_follows_the_targets_replicas_at_promotion() -> None:
    kube, spec = seeded(spec_hpa=False), spec_of(hpa=False)
    initialise(kube, spec)
    bigger = target(replicas=6)
    promoted = apply_primary_deployment(kube, NS, bigger, spec, CANARY, {}, promote=True)
    assert promoted["spec"]["replicas"] == 6
    scaled_down = target(replicas=0)  # the target sits at 0 between rollouts: never copy that
    assert apply_primary_deployment(kube, NS, scaled_down, spec, CANARY, {}, promote=True)["spec"]["replicas"] == 6


def test_a_users_apex_service_is_taken_over_but_never_owned() -> None:
    kube, spec = seeded(spec_hpa=False), spec_of(hpa=False)
    kube.put(
        SERVICES,
        NS,
        {
            "metadata": {"name": "podinfo", "labels": {"team": "a"}},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "10.96.0.10",
                "selector": {"app": "podinfo", "tier": "web"},
                "ports": [{"name": "web", "port": 80, "targetPort": 9898}],
            },
        },
    )
    initialise(kube, spec)
    apex = kube.get(SERVICES, NS, "podinfo")
    assert apex is not None
    assert apex["spec"]["selector"] == {"app": "podinfo-primary"}
    assert apex["spec"]["clusterIP"] == "10.96.0.10"
    assert apex["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 9898, "targetPort": 9898}]
    assert apex["metadata"]["labels"] == {"team": "a"}, "only selector and ports are ours (Flagger's rule)"
    assert "ownerReferences" not in apex["metadata"]
    canary_svc = kube.get(SERVICES, NS, "podinfo-canary")
    assert canary_svc is not None and canary_svc["metadata"]["ownerReferences"][0]["uid"] == "u-1"


LOAD_BALANCER = {
    "metadata": {
        "name": "podinfo",
        "labels": {"team": "a", "app": "shop"},
        "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
    },
    "spec": {
        "type": "LoadBalancer",
        "clusterIP": "10.96.0.10",
        "externalTrafficPolicy": "Local",
        "healthCheckNodePort": 31999,
        "loadBalancerSourceRanges": ["10.0.0.0/8"],
        "loadBalancerClass": "service.k8s.aws/nlb",
        "allocateLoadBalancerNodePorts": True,
        "sessionAffinity": "ClientIP",
        "selector": {"app": "podinfo"},
        "ports": [{"name": "http", "protocol": "TCP", "port": 9898, "targetPort": 9898, "nodePort": 31080}],
    },
}


@pytest.mark.parametrize("kind", ["LoadBalancer", "NodePort"])
def test_a_taken_over_entry_point_keeps_its_type_node_ports_policies_and_metadata(kind: str) -> None:
    kube, spec = seeded(spec_hpa=False), spec_of(hpa=False)
    user = copy.deepcopy(LOAD_BALANCER)
    user["spec"]["type"] = kind
    if kind == "NodePort":
        for field in ("healthCheckNodePort", "loadBalancerSourceRanges", "loadBalancerClass"):
            user["spec"].pop(field)
    kube.put(SERVICES, NS, user)
    before = copy.deepcopy(kube.get(SERVICES, NS, "podinfo"))
    initialise(kube, spec)
    apex = kube.get(SERVICES, NS, "podinfo")
    assert apex is not None and before is not None
    assert apex["spec"]["selector"] == {"app": "podinfo-primary"}
    assert apex["spec"]["ports"] == [
        {"name": "http", "protocol": "TCP", "port": 9898, "targetPort": 9898, "nodePort": 31080}
    ]
    unchanged = {k: v for k, v in before["spec"].items() if k not in ("selector", "ports")}
    assert {k: v for k, v in apex["spec"].items() if k not in ("selector", "ports")} == unchanged
    assert apex["metadata"]["labels"] == before["metadata"]["labels"]
    assert apex["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert "ownerReferences" not in apex["metadata"]
    initialise(kube, spec)  # a rerun (a spec edit, the next release) changes nothing either
    assert kube.get(SERVICES, NS, "podinfo") == apex


def test_missing_references_are_reported_by_name() -> None:
    kube = FakeKube()
    with pytest.raises(TargetInvalid, match="Deployment test/podinfo: targetRef does not exist"):
        read_target(kube, NS, spec_of())
    kube.put(DEPLOYMENTS, NS, target())
    with pytest.raises(TargetInvalid, match="HorizontalPodAutoscaler test/podinfo: autoscalerRef does not exist"):
        apply_primary_hpa(kube, NS, spec_of(), CANARY)
    assert apply_primary_hpa(kube, NS, spec_of(hpa=False), CANARY) is None


def test_readiness_and_restoring_the_target_on_deletion() -> None:
    kube, spec = seeded(), spec_of()
    initialise(kube, spec)
    assert read_readiness(kube, NS, "nope") is None
    ready = read_readiness(kube, NS, "podinfo-primary")
    assert ready is not None and ready.percent == 0.0  # no pods reported yet
    scale(kube, NS, "podinfo", 0)
    scale(kube, NS, "podinfo-primary", 3)
    restored = restore_target(kube, NS, spec)
    assert restored is not None and restored["spec"]["replicas"] == 3
    gone = copy.deepcopy(kube)
    gone.delete(DEPLOYMENTS, NS, "podinfo")
    assert restore_target(gone, NS, spec) is None
