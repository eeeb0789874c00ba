#!/usr/bin/env bash
# Scenario (Gateway API for the mesh, GAMMA; not in the default SCENARIOS): the promote scenario with the HTTPRoute's
# parent the apex Service instead of a Gateway (manifests/gatewayapi/canary-gamma.yaml), and in-mesh traffic
# (manifests/loadgen.yaml: the load generator's sidecar splits podinfo.test:9898 by the route). Asserts: the route's
# parentRef is Service podinfo, its steps reach the canary, the Canary ends Succeeded with the release on the
# primary and the route back on it. Restores canary.yaml and removes the mesh load generator.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools kubectl kubectl-coalmine

kubectl apply -f "${MANIFESTS}/gatewayapi/canary-gamma.yaml"
wait_for_phase canary podinfo 300 Initialized Succeeded Failed
parent_is_the_service() {
  [[ "$(kubectl -n "${NAMESPACE}" get httproutes.gateway.networking.k8s.io podinfo \
    -o jsonpath='{.spec.parentRefs[0].kind}/{.spec.parentRefs[0].name}')" == "Service/podinfo" ]]
}
wait_until 60 "HTTPRoute podinfo to attach to Service podinfo (GAMMA)" parent_is_the_service
kubectl apply -f "${MANIFESTS}/loadgen.yaml"
kubectl -n "${NAMESPACE}" rollout status deployment/loadgen --timeout=300s

message="gamma-$(date +%s)"
release podinfo "${message}" "$(container_field podinfo-primary .image)" "${PODINFO_COMMAND}"
wait_for_phase canary podinfo 180 Progressing Succeeded Failed
observe_route_until 900 canary podinfo Succeeded Failed
[[ "$(phase canary podinfo)" == "Succeeded" ]] || fail "the GAMMA rollout ended $(phase canary podinfo)"
[[ "${SEEN_WEIGHTS}" == *" 20 "* ]] || fail "the mesh route never sent 20% to the canary (weights:${SEEN_WEIGHTS})"
[[ "$(release_message podinfo-primary)" == "${message}" ]] || fail "podinfo-primary does not run ${message}"
[[ "$(httproute_weight podinfo podinfo-primary)" == "100" ]] || fail "the mesh route is not back on the primary"

kubectl delete -f "${MANIFESTS}/loadgen.yaml" --ignore-not-found --wait=true --timeout=120s
kubectl apply -f "${MANIFESTS}/gatewayapi/canary.yaml"
pass "GAMMA scenario passed"
