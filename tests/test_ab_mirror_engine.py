"""Canary A/B testing and traffic mirroring, end to end from the engine's decisions to the VirtualService.

Each test drives the pure engine tick by tick (``rollout_world``) and applies every ``SetWeights`` it emits through
the real Istio router onto an in-memory API, so what is asserted is what Istio would route: matched requests to
the canary for exactly the A/B iterations, a mirror only before the first weight increase, cookies for
session affinity. The BlueGreen preview goes through the same router and is checked the same way.
"""

from __future__ import annotations

from typing import Any

from fakekube import FakeKube
from operator_harness import istio_valid
from rollout_world import FAIL, Run, hook, make_spec

from controller.kube.client import VIRTUAL_SERVICES
from controller.rollout import bluegreen
from controller.rollout.bluegreen_spec import parse_bluegreen_spec
from controller.rollout.decision import SetWeights
from controller.rollout.phases import Phase
from controller.rollout.spec import CanarySpec
from controller.rollout.status import CanaryStatus
from controller.rollout.validation import validate_document
from controller.routers.istio import MATCH_ROUTE, STICKY_ROUTE, WEIGHTED_ROUTE, IstioRouter

MINUTE_S = 60.0
META = {"apiVersion": "coalmine.dev/v1alpha1", "kind": "Canary", "metadata": {"name": "podinfo", "namespace": "t"}}
INSIDERS = [
    {"headers": {"x-canary": {"exact": "insider"}}},
    {"headers": {"cookie": {"regex": "^(.*?;)?(beta=1)(;.*)?$"}}},
]


class Mesh:
    """The router bound to an in-memory API: every SetWeights becomes a VirtualService write, validated by Istio's
    schema, and its named routes are recorded as (primary, canary) weights plus the mirror percentage."""

    def __init__(self, spec: CanarySpec, meta: dict[str, Any] = META) -> None:
        self.kube = FakeKube()
        self.router = IstioRouter(self.kube, spec, meta, cookie_factory=lambda: "abcdefghij")
        self.router.reconcile(spec, meta)
        self.seen: list[dict[str, Any]] = []

    def apply(self, actions: tuple[Any, ...]) -> None:
        for action in actions:
            if isinstance(action, SetWeights):
                self.router.set_routes(action.primary, action.canary, action.mirror_weight, action.match_active)
                self.seen.append(self.routes())

    def vs(self) -> dict[str, Any]:
        vs = self.kube.get(VIRTUAL_SERVICES, "t", "podinfo")
        assert vs is not None
        istio_valid(vs)
        return vs

    def routes(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for route in self.vs()["spec"]["http"]:
            found[route["name"]] = tuple(d["weight"] for d in route["route"])
            if "mirrorPercentage" in route:
                found["mirror"] = route["mirrorPercentage"]["value"]
        return found


def drive(run: Run, mesh: Mesh, ticks: int, **kwargs: Any) -> None:
    for _ in range(ticks):
        mesh.apply(run.tick(advance=MINUTE_S, **kwargs).actions)


def test_ab_routes_matching_requests_to_the_canary_for_exactly_the_iterations_then_promotes() -> None:
    spec = make_spec({"interval": "1m", "iterations": 3, "match": INSIDERS})
    run, mesh = Run(spec), Mesh(spec)
    run.progressing()
    mesh.apply(run.decisions[-1].actions)
    assert mesh.routes() == {MATCH_ROUTE: (100, 0), WEIGHTED_ROUTE: (100, 0)}  # scaled up, nothing routed yet
    drive(run, mesh, 1)  # the first look (pre-rollout hooks) starts iteration 1: the match route goes live
    assert run.status.iterations == 1
    assert mesh.routes() == {MATCH_ROUTE: (0, 100), WEIGHTED_ROUTE: (100, 0)}
    assert len(mesh.vs()["spec"]["http"][0]["match"]) == 2  # both conditions, as written
    drive(run, mesh, 2)
    assert run.status.iterations == 3 and run.status.phase is Phase.PROGRESSING
    drive(run, mesh, 1)  # the look after the last iteration promotes
    assert run.status.phase is Phase.PROMOTING
    assert mesh.routes()[MATCH_ROUTE] == (0, 100), "insiders stay on the canary while the primary is updated"
    drive(run, mesh, 2)
    assert run.status.phase is Phase.SUCCEEDED
    assert mesh.routes() == {MATCH_ROUTE: (100, 0), WEIGHTED_ROUTE: (100, 0)}
    # Everyone else never saw the canary: the weighted route stayed 100/0 on every write.
    assert {seen[WEIGHTED_ROUTE] for seen in mesh.seen} == {(100, 0)}


def test_ab_failure_ends_the_match_route_at_once() -> None:
    spec = make_spec({"interval": "1m", "iterations": 5, "threshold": 1, "match": INSIDERS})
    run, mesh = Run(spec), Mesh(spec)
    run.progressing()
    drive(run, mesh, 2)
    assert mesh.routes()[MATCH_ROUTE] == (0, 100)
    drive(run, mesh, 1, verdict=FAIL)
    assert run.status.phase is Phase.FAILED and mesh.routes()[MATCH_ROUTE] == (100, 0)


def test_ab_merges_the_match_with_the_service_match_so_it_never_widens() -> None:
    spec = make_spec(
        {"interval": "1m", "iterations": 2, "match": INSIDERS[:1]},
        service={"port": 9898, "match": [{"uri": {"prefix": "/api"}}]},
    )
    mesh = Mesh(spec)
    mesh.router.set_routes(100, 0, None, True)
    [condition] = mesh.vs()["spec"]["http"][0]["match"]
    assert condition == {"uri": {"prefix": "/api"}, "headers": {"x-canary": {"exact": "insider"}}}


def test_mirror_copies_traffic_only_before_the_first_weight_increase() -> None:
    spec = make_spec({"interval": "1m", "stepWeight": 25, "maxWeight": 50, "mirror": True, "mirrorWeight": 30})
    run, mesh = Run(spec), Mesh(spec)
    run.progressing()
    drive(run, mesh, 1)  # the first look mirrors (weight still 0)
    assert mesh.routes() == {WEIGHTED_ROUTE: (100, 0), "mirror": 30.0}
    drive(run, mesh, 1)
    assert mesh.routes() == {WEIGHTED_ROUTE: (75, 25)}
    drive(run, mesh, 4)
    assert run.status.phase is Phase.SUCCEEDED
    mirrored = [seen for seen in mesh.seen if "mirror" in seen]
    assert mirrored and all(seen[WEIGHTED_ROUTE] == (100, 0) for seen in mirrored)


def test_mirroring_and_ab_matching_cannot_be_combined_on_a_canary() -> None:
    doc = {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "podinfo"},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"iterations": 3, "match": INSIDERS, "mirror": True},
        },
    }
    assert [p.path for p in validate_document(doc).problems] == ["spec.analysis.mirror"]


def test_session_affinity_cookie_passes_through_to_the_virtual_service_while_the_canary_has_traffic() -> None:
    affinity = {"cookieName": "canary-user", "maxAge": 600}
    spec = make_spec({"interval": "1m", "stepWeight": 50, "sessionAffinity": affinity})
    run, mesh = Run(spec), Mesh(spec)
    run.progressing()
    drive(run, mesh, 2)
    vs = mesh.vs()
    weighted = next(r for r in vs["spec"]["http"] if r["name"] == WEIGHTED_ROUTE)
    assert weighted["route"][1]["headers"]["response"]["add"]["Set-Cookie"] == "canary-user=abcdefghij; Max-Age=600"
    assert mesh.routes()[STICKY_ROUTE] == (0, 100)
    drive(run, mesh, 3)
    assert run.status.phase is Phase.SUCCEEDED
    sticky = next(r for r in mesh.vs()["spec"]["http"] if r["name"] == STICKY_ROUTE)
    assert sticky["headers"]["response"]["add"]["Set-Cookie"] == "canary-user=abcdefghij; Max-Age=-1"


def test_bluegreen_preview_with_mirror_and_match_is_a_valid_virtual_service() -> None:
    spec = parse_bluegreen_spec(
        {
            "targetRef": {"kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "webhooks": hook("rollout")},
            "preview": {"mirror": True, "mirrorWeight": 40, "match": INSIDERS},
            "prePromotionAnalysis": {"iterations": 1},
        }
    )
    mesh = Mesh(spec.canary, {**META, "kind": "BlueGreen"})
    status = CanaryStatus(
        phase=Phase.PROGRESSING, mirrored=True, last_promoted_spec="v1", gates={bluegreen.GATE_PREVIEW: bluegreen.ON}
    )
    desired = bluegreen.desired_routes(spec, status)
    assert desired is not None
    mesh.apply((desired,))
    assert mesh.routes() == {MATCH_ROUTE: (0, 100), WEIGHTED_ROUTE: (100, 0), "mirror": 40.0}
    owner = mesh.vs()["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "BlueGreen"  # garbage-collected with the BlueGreen, not with a Canary of that name
