"""The emulated API server is strict where a real one is: Istio's and Gateway API's real CRDs (CEL rules included),
one Event store behind ``v1`` and ``events.k8s.io/v1``, and Services typed, allocated and defaulted like a cluster.

The references are the unmodified upstream CRDs under ``/work/shared/reference/crds`` (the repo ships copies, so
these tests also run on a clean clone; the comparisons with the reference skip without it).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from emulator import CoalmineEmulator
from emulator.objects import ApiError
from emulator.vendored import GATEWAY_API_DIR, ISTIO_KINDS, istio_crds
from kubernetes.client.exceptions import ApiException

REFERENCE = Path("/work/shared/reference/crds")
NS = "default"
VS_V1 = "networking.istio.io/v1/virtualservices"
VS_V1BETA1 = "networking.istio.io/v1beta1/virtualservices"
DR_V1BETA1 = "networking.istio.io/v1beta1/destinationrules"
DR_V1 = "networking.istio.io/v1/destinationrules"
HTTPROUTES = "gateway.networking.k8s.io/v1/httproutes"
GATEWAYS = "gateway.networking.k8s.io/v1/gateways"
GATEWAYCLASSES = "gateway.networking.k8s.io/v1/gatewayclasses"
SERVICES = "v1/services"
CORE_EVENTS = "v1/events"
EVENTS = "events.k8s.io/v1/events"


@pytest.fixture
def emu() -> CoalmineEmulator:
    return CoalmineEmulator(crd_paths=[])


def _invalid(excinfo: pytest.ExceptionInfo[ApiError]) -> dict[str, str]:
    """The 422's causes by field."""
    assert excinfo.value.code == 422, excinfo.value.message
    return {c["field"]: c["message"] for c in excinfo.value.details["causes"]}


def _vs(name: str = "app", **spec: Any) -> dict[str, Any]:
    body = {"hosts": ["app"], "http": [{"route": [{"destination": {"host": "app"}}]}]}
    return {"metadata": {"name": name, "namespace": NS}, "spec": {**body, **spec}}


def _route(**rule: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "app", "namespace": NS},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [{"backendRefs": [{"name": "app", "port": 80}], **rule}],
        },
    }


# -- the shipped CRDs are the reference's ---------------------------------------------------------------------------


def _reference_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="needs the reference CRDs")
def test_the_istio_crds_served_are_the_reference_crds() -> None:
    reference = {
        d["spec"]["names"]["kind"]: d
        for d in _reference_docs(REFERENCE / "istio" / "customresourcedefinitions.gen.yaml")
        if d["spec"]["group"] == "networking.istio.io"
    }
    built = {crd["spec"]["names"]["kind"]: crd for crd in istio_crds()}
    assert set(built) == set(ISTIO_KINDS)
    for kind, crd in built.items():
        assert crd["spec"] == reference[kind]["spec"], kind
        assert crd["metadata"]["name"] == reference[kind]["metadata"]["name"]


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="needs the reference CRDs")
def test_the_gateway_api_crds_shipped_are_unmodified_copies() -> None:
    shipped = sorted(p.name for p in GATEWAY_API_DIR.iterdir())
    assert "LICENSE" in shipped and "httproutes.yaml" in shipped and "gateways.yaml" in shipped
    for name in shipped:
        assert (GATEWAY_API_DIR / name).read_bytes() == (REFERENCE / "gateway-api" / name).read_bytes(), name


def test_the_real_crds_are_stored_and_discoverable(emu: CoalmineEmulator) -> None:
    crds = {obj["metadata"]["name"] for obj in emu.list_objects("apiextensions.k8s.io/v1/customresourcedefinitions")}
    assert {
        "virtualservices.networking.istio.io",
        "destinationrules.networking.istio.io",
        "httproutes.gateway.networking.k8s.io",
        "gateways.gateway.networking.k8s.io",
        "gatewayclasses.gateway.networking.k8s.io",
        "referencegrants.gateway.networking.k8s.io",
    } <= crds
    for resource in (
        "networking.istio.io/v1alpha3/virtualservices",
        "gateway.networking.k8s.io/v1beta1/httproutes",
        "gateway.networking.k8s.io/v1beta1/gateways",
        "gateway.networking.k8s.io/v1/referencegrants",
        "gateway.networking.k8s.io/v1beta1/referencegrants",
        "gateway.networking.k8s.io/v1beta1/gatewayclasses",
    ):
        assert emu.spec(resource).validator is not None, resource
    assert emu.spec("gateway.networking.k8s.io/v1/referencegrants").storage_version == "v1beta1"
    assert not emu.spec(GATEWAYCLASSES).namespaced


def test_every_cel_rule_of_the_served_crds_compiles(emu: CoalmineEmulator) -> None:
    from emulator.cel_rules import compile_rule, rules_of

    rules = {
        rule["rule"]
        for spec in emu._specs.values()
        if spec.schema is not None and spec.group in ("networking.istio.io", "gateway.networking.k8s.io")
        for rule in rules_of(spec.schema)
    }
    assert len(rules) > 50
    for rule in rules:
        compile_rule(rule)


# -- Istio: pruned, validated, CEL rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", [VS_V1, VS_V1BETA1])
def test_a_virtual_service_field_istio_does_not_know_is_pruned(emu: CoalmineEmulator, resource: str) -> None:
    body = _vs()
    body["spec"]["http"][0]["retries"] = {"attempts": 3, "perTryTimout": "1s"}
    stored = emu.create_object(resource, body)
    assert stored["spec"]["http"][0]["retries"] == {"attempts": 3}


@pytest.mark.parametrize("resource", [VS_V1, VS_V1BETA1])
def test_a_virtual_service_breaking_an_istio_cel_rule_is_invalid(emu: CoalmineEmulator, resource: str) -> None:
    body = _vs()
    body["spec"]["http"][0]["retries"] = {"attempts": 3, "perTryTimeout": "0s"}
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(resource, body)
    causes = _invalid(excinfo)
    assert "must be a valid duration greater than 1ms" in causes["spec.http[0].retries.perTryTimeout"]


def test_a_virtual_service_with_a_wrong_type_is_invalid(emu: CoalmineEmulator) -> None:
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(VS_V1, _vs(hosts="app"))
    assert "spec.hosts" in _invalid(excinfo)


def test_a_cel_rule_also_holds_on_patches(emu: CoalmineEmulator) -> None:
    emu.create_object(VS_V1, _vs())
    with pytest.raises(ApiError) as excinfo:
        emu.patch_object(VS_V1, NS, "app", {"spec": {"http": [{"timeout": "1d"}]}})
    assert "spec.http[0].timeout" in _invalid(excinfo)  # Go durations have no days


def test_a_destination_rule_written_as_v1beta1_is_validated_and_read_as_v1(emu: CoalmineEmulator) -> None:
    bad = {"metadata": {"name": "app", "namespace": NS}, "spec": {"host": "app", "subsets": [{"labels": {}}]}}
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(DR_V1BETA1, bad)
    assert "spec.subsets[0].name" in json.dumps(_invalid(excinfo)) or "spec.subsets[0]" in _invalid(excinfo)
    good = {"metadata": {"name": "app", "namespace": NS}, "spec": {"host": "app", "subsets": [{"name": "canary"}]}}
    emu.create_object(DR_V1BETA1, good)
    read = emu.read_object(DR_V1, NS, "app")
    assert read is not None and read["apiVersion"] == "networking.istio.io/v1"


def test_a_cel_422_over_http_names_the_field(k8s_client: kubernetes.client.ApiClient) -> None:
    api = kubernetes.client.CustomObjectsApi(k8s_client)
    body = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", **_vs()}
    body["spec"]["http"][0]["retries"] = {"perTryTimeout": "0s"}
    with pytest.raises(ApiException) as excinfo:
        api.create_namespaced_custom_object("networking.istio.io", "v1", NS, "virtualservices", body)
    assert excinfo.value.status == 422
    status = json.loads(str(excinfo.value.body))
    assert status["reason"] == "Invalid"
    assert [c["field"] for c in status["details"]["causes"]] == ["spec.http[0].retries.perTryTimeout"]


# -- Gateway API: defaults, CEL rules, transition rules ---------------------------------------------------------------


def test_an_httproute_gets_gateway_api_defaults(emu: CoalmineEmulator) -> None:
    stored = emu.create_object(HTTPROUTES, _route())
    rule = stored["spec"]["rules"][0]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert rule["backendRefs"][0]["weight"] == 1
    assert rule["backendRefs"][0]["kind"] == "Service"
    assert stored["spec"]["parentRefs"][0]["group"] == "gateway.networking.k8s.io"


def test_an_httproute_breaking_a_cel_rule_is_invalid(emu: CoalmineEmulator) -> None:
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(HTTPROUTES, _route(matches=[{"path": {"type": "PathPrefix", "value": "api"}}]))
    causes = _invalid(excinfo)
    assert "must be an absolute path" in causes["spec.rules[0].matches[0].path"]


def test_an_httproute_with_a_cel_rule_over_a_list_is_invalid(emu: CoalmineEmulator) -> None:
    filters = [
        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "a", "value": "1"}]}},
        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "b", "value": "2"}]}},
    ]
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(HTTPROUTES, _route(filters=filters))
    assert "RequestHeaderModifier filter cannot be repeated" in _invalid(excinfo)["spec.rules[0].filters"]


def test_cel_sees_property_names_escaped_like_kubernetes(emu: CoalmineEmulator) -> None:
    # ``namespace`` is a CEL keyword: Gateway API's parentRefs rule reads it as ``__namespace__``. Two references to
    # one Gateway name in different namespaces are different parents, so only one may carry a sectionName.
    body = _route()
    body["spec"]["parentRefs"] = [
        {"name": "gw", "namespace": "a", "sectionName": "https"},
        {"name": "gw", "namespace": "b"},
    ]
    emu.create_object(HTTPROUTES, body)
    body["metadata"]["name"] = "same-parent"
    body["spec"]["parentRefs"][1]["namespace"] = "a"
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(HTTPROUTES, body)
    assert "2 or more references to the same parent" in _invalid(excinfo)["spec.parentRefs"]


def _gateway(**listener: Any) -> dict[str, Any]:
    base = {"name": "http", "port": 80, "protocol": "HTTP"}
    return {
        "metadata": {"name": "gw", "namespace": NS},
        "spec": {"gatewayClassName": "istio", "listeners": [{**base, **listener}]},
    }


def test_a_gateway_breaking_a_cel_rule_is_invalid(emu: CoalmineEmulator) -> None:
    emu.create_object(GATEWAYS, _gateway())
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(
            GATEWAYS, {**_gateway(tls={"mode": "Terminate"}), "metadata": {"name": "g2", "namespace": NS}}
        )
    assert "tls must not be specified" in _invalid(excinfo)["spec.listeners"]


def test_a_gateway_label_rule_uses_the_kubernetes_string_library(emu: CoalmineEmulator) -> None:
    body = _gateway()
    body["spec"]["infrastructure"] = {"labels": {f"{'a' * 253}.example.com/x": "y"}}
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(GATEWAYS, body)
    assert "spec.infrastructure.labels" in _invalid(excinfo)


def test_a_gateway_with_duplicate_listener_names_is_invalid(emu: CoalmineEmulator) -> None:
    body = _gateway()
    body["spec"]["listeners"].append(copy.deepcopy(body["spec"]["listeners"][0]) | {"port": 8080})
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(GATEWAYS, body)
    assert "Duplicate value" in json.dumps(_invalid(excinfo))


def test_a_transition_rule_applies_on_update_only(emu: CoalmineEmulator) -> None:
    body = {"metadata": {"name": "istio"}, "spec": {"controllerName": "istio.io/gateway-controller"}}
    emu.create_object(GATEWAYCLASSES, body)  # oldSelf rules are not evaluated on create
    emu.patch_object(GATEWAYCLASSES, None, "istio", {"spec": {"description": "ok"}})
    with pytest.raises(ApiError) as excinfo:
        emu.patch_object(GATEWAYCLASSES, None, "istio", {"spec": {"controllerName": "example.com/other"}})
    assert _invalid(excinfo)["spec.controllerName"].endswith("field is immutable")


# -- generic structural-schema rules (a small CRD of the test's own) -------------------------------------------------


def _gadgets_crd(spec_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.test.coalmine.dev"},
        "spec": {
            "group": "test.coalmine.dev",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec_schema}}},
                }
            ],
        },
    }


GADGETS = "test.coalmine.dev/v1/gadgets"


def _gadget(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "g", "namespace": NS}, "spec": spec}


def test_message_expression_reason_and_field_path_are_used(emu: CoalmineEmulator) -> None:
    rule = {
        "rule": "self.min <= self.max",
        "message": "static",
        "messageExpression": "'min ' + string(self.min) + ' exceeds max ' + string(self.max)",
        "fieldPath": ".min",
        "reason": "FieldValueForbidden",
    }
    schema = {
        "type": "object",
        "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
        "x-kubernetes-validations": [rule],
    }
    emu.add_crd(_gadgets_crd(schema))
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(GADGETS, _gadget(min=5, max=2))
    assert excinfo.value.details["causes"] == [
        {"reason": "FieldValueForbidden", "message": "Forbidden: min 5 exceeds max 2", "field": "spec.min"}
    ]


def test_a_failed_rule_without_message_names_the_rule(emu: CoalmineEmulator) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "x-kubernetes-validations": [{"rule": "self > 1"}]}},
    }
    emu.add_crd(_gadgets_crd(schema))
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(GADGETS, _gadget(n=0))
    assert _invalid(excinfo)["spec.n"] == 'Invalid value: "integer": failed rule: self > 1'


def test_a_null_in_a_non_nullable_field_is_pruned_then_defaulted(emu: CoalmineEmulator) -> None:
    schema = {
        "type": "object",
        "properties": {"size": {"type": "integer", "default": 3}, "label": {"type": "string"}},
    }
    emu.add_crd(_gadgets_crd(schema))
    stored = emu.create_object(GADGETS, _gadget(size=None, label=None))
    assert stored["spec"] == {"size": 3}


def test_list_type_set_and_map_refuse_duplicates(emu: CoalmineEmulator) -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "ports": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}},
            },
        },
    }
    emu.add_crd(_gadgets_crd(schema))
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(GADGETS, _gadget(tags=["a", "b", "a"], ports=[{"name": "x", "n": 1}, {"name": "x", "n": 2}]))
    causes = _invalid(excinfo)
    assert causes["spec.tags[2]"].startswith('Duplicate value: "a"')
    assert causes["spec.ports[1]"].startswith("Duplicate value:")


def test_formats_that_the_api_server_checks(emu: CoalmineEmulator) -> None:
    schema = {
        "type": "object",
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "blob": {"type": "string", "format": "byte"},
            "count": {"type": "integer", "format": "int32"},
            "free": {"type": "string", "format": "not-a-known-format"},
        },
    }
    emu.add_crd(_gadgets_crd(schema))
    emu.create_object(GADGETS, _gadget(at="2026-01-01T00:00:00Z", blob="aGk=", count=5, free="anything"))
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(
            GADGETS,
            {**_gadget(at="yesterday", blob="not base64!", count=2**40), "metadata": {"name": "h", "namespace": NS}},
        )
    assert set(_invalid(excinfo)) == {"spec.at", "spec.blob", "spec.count"}


# -- Events: one store, two APIs ------------------------------------------------------------------------------------

CORE_EVENT: dict[str, Any] = {
    "metadata": {"name": "podinfo.1", "namespace": NS},
    "involvedObject": {"apiVersion": "coalmine.dev/v1alpha1", "kind": "Canary", "name": "podinfo", "namespace": NS},
    "reason": "Promoted",
    "message": "canary promoted",
    "type": "Normal",
    "count": 3,
    "firstTimestamp": "2026-01-01T00:00:00Z",
    "lastTimestamp": "2026-01-01T00:05:00Z",
    "source": {"component": "coalmine"},
    "reportingComponent": "coalmine",
    "reportingInstance": "coalmine-0",
    "action": "Promote",
}


def test_a_core_event_is_listed_through_events_k8s_io_converted(emu: CoalmineEmulator) -> None:
    emu.create_object(CORE_EVENTS, CORE_EVENT)
    [event] = emu.list_objects(EVENTS, NS)
    assert event["apiVersion"] == "events.k8s.io/v1"
    assert event["note"] == "canary promoted"
    assert event["regarding"] == CORE_EVENT["involvedObject"]
    assert event["reportingController"] == "coalmine"
    assert event["reportingInstance"] == "coalmine-0"
    assert event["deprecatedCount"] == 3
    assert event["deprecatedFirstTimestamp"] == "2026-01-01T00:00:00Z"
    assert event["deprecatedLastTimestamp"] == "2026-01-01T00:05:00Z"
    assert event["deprecatedSource"] == {"component": "coalmine"}
    assert (event["reason"], event["type"], event["action"]) == ("Promoted", "Normal", "Promote")
    for core_only in ("message", "involvedObject", "count", "source", "reportingComponent", "firstTimestamp"):
        assert core_only not in event


def test_an_events_k8s_io_event_is_read_as_a_core_event(emu: CoalmineEmulator) -> None:
    body = {
        "metadata": {"name": "podinfo.2", "namespace": NS},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "series": {"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"},
        "regarding": {"kind": "Deployment", "name": "podinfo", "namespace": NS},
        "reportingController": "coalmine.dev/operator",
        "reportingInstance": "coalmine-0",
        "action": "Scale",
        "reason": "Scaled",
        "note": "scaled to 3",
        "type": "Normal",
    }
    emu.create_object(EVENTS, body)
    core = emu.read_object(CORE_EVENTS, NS, "podinfo.2")
    assert core is not None
    assert core["message"] == "scaled to 3"
    assert core["involvedObject"] == body["regarding"]
    assert core["reportingComponent"] == "coalmine.dev/operator"
    assert core["eventTime"] == body["eventTime"] and core["series"] == body["series"]
    assert "note" not in core and "regarding" not in core
    # One object: a patch through either API is seen through the other.
    emu.patch_object(EVENTS, NS, "podinfo.2", {"note": "scaled to 4"})
    core = emu.read_object(CORE_EVENTS, NS, "podinfo.2")
    assert core is not None and core["message"] == "scaled to 4"
    emu.delete_object(CORE_EVENTS, NS, "podinfo.2")
    assert emu.read_object(EVENTS, NS, "podinfo.2") is None


# -- Services: type, clusterIP and nodePorts like the API server ---------------------------------------------------


def _service(name: str = "app", **spec: Any) -> dict[str, Any]:
    ports = [{"name": "http", "port": 80, "targetPort": 8080}]
    return {"metadata": {"name": name, "namespace": NS}, "spec": {"selector": {"app": name}, "ports": ports, **spec}}


def _put(emu: CoalmineEmulator, body: dict[str, Any]) -> dict[str, Any]:
    spec = emu.spec(SERVICES)
    return emu.store.update(spec, NS, body["metadata"]["name"], None, body, None)


def test_a_service_gets_the_api_servers_defaults(emu: CoalmineEmulator) -> None:
    spec = emu.create_object(SERVICES, _service())["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in spec
    assert spec["ports"] == [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]


def test_session_affinity_client_ip_gets_its_default_timeout(emu: CoalmineEmulator) -> None:
    spec = emu.create_object(SERVICES, _service(sessionAffinity="ClientIP"))["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_the_cluster_ip_is_kept_when_a_replace_omits_it_and_cannot_change(emu: CoalmineEmulator) -> None:
    ip = emu.create_object(SERVICES, _service())["spec"]["clusterIP"]
    assert _put(emu, _service())["spec"]["clusterIP"] == ip
    with pytest.raises(ApiError) as excinfo:
        _put(emu, _service(clusterIP="10.96.200.200"))
    assert "may not change once set" in _invalid(excinfo)["spec.clusterIPs[0]"]


def test_an_unknown_service_type_is_invalid(emu: CoalmineEmulator) -> None:
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(SERVICES, _service(type="Magic"))
    assert _invalid(excinfo)["spec.type"].startswith('Unsupported value: "Magic"')


def test_a_node_port_on_a_cluster_ip_service_is_invalid(emu: CoalmineEmulator) -> None:
    body = _service()
    body["spec"]["ports"][0]["nodePort"] = 30080
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(SERVICES, body)
    assert "may not be used when `type` is 'ClusterIP'" in _invalid(excinfo)["spec.ports[0].nodePort"]


def test_node_ports_are_allocated_and_kept_across_replaces_and_patches(emu: CoalmineEmulator) -> None:
    spec = emu.create_object(SERVICES, _service(type="NodePort"))["spec"]
    node_port = spec["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    assert spec["externalTrafficPolicy"] == "Cluster"
    # A replace that omits the nodePort keeps it (same port name); a new port gets a fresh one.
    body = _service(type="NodePort")
    body["spec"]["ports"].append({"name": "metrics", "port": 9090})
    ports = _put(emu, body)["spec"]["ports"]
    assert ports[0]["nodePort"] == node_port
    assert 30000 <= ports[1]["nodePort"] <= 32767 and ports[1]["nodePort"] != node_port
    patched = emu.patch_object(SERVICES, NS, "app", {"spec": {"selector": {"app": "other"}}})["spec"]
    assert [p["nodePort"] for p in patched["ports"]] == [p["nodePort"] for p in ports]


def test_changing_to_cluster_ip_releases_the_node_ports(emu: CoalmineEmulator) -> None:
    node_port = emu.create_object(SERVICES, _service(type="NodePort"))["spec"]["ports"][0]["nodePort"]
    spec = emu.patch_object(SERVICES, NS, "app", {"spec": {"type": "ClusterIP"}})["spec"]
    assert "nodePort" not in spec["ports"][0]
    assert "externalTrafficPolicy" not in spec
    other = _service("other", type="NodePort")
    other["spec"]["ports"][0]["nodePort"] = node_port  # free again
    assert emu.create_object(SERVICES, other)["spec"]["ports"][0]["nodePort"] == node_port


def test_node_ports_must_be_in_range_and_free(emu: CoalmineEmulator) -> None:
    body = _service(type="NodePort")
    body["spec"]["ports"][0]["nodePort"] = 80
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(SERVICES, body)
    assert "not in the valid range" in _invalid(excinfo)["spec.ports[0].nodePort"]
    body["spec"]["ports"][0]["nodePort"] = 30080
    emu.create_object(SERVICES, body)
    with pytest.raises(ApiError) as excinfo:
        emu.create_object(SERVICES, {**body, "metadata": {"name": "other", "namespace": NS}})
    assert "provided port is already allocated" in _invalid(excinfo)["spec.ports[0].nodePort"]


def test_a_load_balancer_gets_node_ports_and_a_health_check_port(emu: CoalmineEmulator) -> None:
    spec = emu.create_object(SERVICES, _service(type="LoadBalancer", externalTrafficPolicy="Local"))["spec"]
    assert spec["allocateLoadBalancerNodePorts"] is True
    assert 30000 <= spec["ports"][0]["nodePort"] <= 32767
    health = spec["healthCheckNodePort"]
    assert 30000 <= health <= 32767 and health != spec["ports"][0]["nodePort"]
    again = _put(emu, _service(type="LoadBalancer", externalTrafficPolicy="Local"))["spec"]
    assert again["healthCheckNodePort"] == health
    assert again["ports"][0]["nodePort"] == spec["ports"][0]["nodePort"]


def test_events_are_one_store_over_http(k8s_client: kubernetes.client.ApiClient) -> None:
    core = kubernetes.client.CoreV1Api(k8s_client)
    events = kubernetes.client.EventsV1Api(k8s_client)
    # (the official client's EventsV1Event requires eventTime, which a real server would serve as null without it)
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        **copy.deepcopy(CORE_EVENT),
        "eventTime": "2026-01-01T00:00:00.000000Z",
    }
    core.create_namespaced_event(NS, body)  # type: ignore[arg-type]  # the client sends a dict as is
    [event] = events.list_namespaced_event(NS).items
    assert event.regarding is not None and event.metadata is not None and event.metadata.name
    assert (event.note, event.regarding.name, event.deprecated_count) == ("canary promoted", "podinfo", 3)
    assert event.reporting_controller == "coalmine"
    events.delete_namespaced_event(event.metadata.name, NS)
    assert core.list_namespaced_event(NS).items == []


EVENTS = "events.k8s.io/v1/events"


def _event(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "e1"},
        "eventTime": "2026-12-07T00:00:00.000000Z",
        "reportingController": "coalmine.dev/operator",
        "reportingInstance": "coalmine-0",
        "action": "Advanced",
        "reason": "Advanced",
        "type": "Normal",
        "note": "Advance podinfo canary weight 20",
        "regarding": {"kind": "Canary", "name": "podinfo", "namespace": "test"},
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"note": "x" * 1025}, "note"),
        ({"type": "Info"}, "type"),
        ({"eventTime": None}, "eventTime"),
        ({"reportingController": None}, "reportingController"),
        ({"action": "a" * 129}, "action"),
    ],
)
def test_an_events_api_event_is_validated_on_create_as_a_real_server_does(changes: dict[str, Any], field: str) -> None:
    emulator = CoalmineEmulator()
    emulator.create_object(EVENTS, _event(metadata={"name": "fine"}), "test")
    with pytest.raises(ApiError) as refused:
        emulator.create_object(EVENTS, _event(**changes), "test")
    assert refused.value.code == 422 and f"{field}:" in refused.value.message
