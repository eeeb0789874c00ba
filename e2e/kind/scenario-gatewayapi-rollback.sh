#!/usr/bin/env bash
# Scenario (Gateway API): a faulty release is rolled back.
# Releases podinfo with --random-error and asserts: Prometheus saw the canary's 5xx (the Gateway sent it traffic),
# the Canary ends Failed with Stalled=True, the primary still runs the last promoted release, status.canaryWeight
# and the HTTPRoute's canary weight are 0 and the target is scaled to 0. Then reverts the Deployment to the promoted
# release and asserts the Canary returns to Succeeded without a new rollout.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools kubectl kubectl-coalmine python3

kubectl apply -f "${MANIFESTS}/gatewayapi/canary.yaml"
wait_for_phase canary podinfo 300 Initialized Succeeded Failed
if phase_is canary podinfo Failed; then
  fail "the Canary is Failed before the scenario starts; run scenario-gatewayapi-promote.sh first"
fi
promoted_image="$(container_field podinfo-primary .image)"
promoted_message="$(release_message podinfo-primary)"
log "podinfo-primary runs ${promoted_image} (${promoted_message})"

release podinfo "faulty-$(date +%s)" "${promoted_image}" "${PODINFO_FAULTY_COMMAND}"
wait_for_phase canary podinfo 180 Progressing Failed
observe_route_until 900 canary podinfo Failed Succeeded
[[ "$(phase canary podinfo)" == "Failed" ]] || fail "a release answering 5xx ended $(phase canary podinfo)"
[[ "${SEEN_WEIGHTS}" == *" 20 "* ]] || fail "the canary never got traffic from the Gateway (weights:${SEEN_WEIGHTS})"
kubectl -n "${NAMESPACE}" wait --for=condition=Stalled canary/podinfo --timeout=60s
prom_positive "$(istio_requests podinfo '5..' 3m)" ||
  fail "Prometheus has no 5xx for the canary: the rollback was not caused by the faulty release's errors"
[[ "$(container_field podinfo-primary .image)" == "${promoted_image}" ]] || fail "the primary's image changed"
[[ "$(release_message podinfo-primary)" == "${promoted_message}" ]] ||
  fail "the faulty release reached the primary ($(release_message podinfo-primary))"
[[ "$(kubectl -n "${NAMESPACE}" get canary podinfo -o jsonpath='{.status.canaryWeight}')" == "0" ]] ||
  fail "status.canaryWeight is not 0 after the rollback"
[[ "$(httproute_weight podinfo podinfo-primary)" == "100" && "$(httproute_weight podinfo podinfo-canary)" == "0" ]] ||
  fail "the HTTPRoute does not send all traffic to the primary after the rollback"
wait_until 120 "the target podinfo to be scaled to 0" replicas_are podinfo 0
pass "rolled back: weight 0 on the HTTPRoute, the primary runs ${promoted_message}, canary scaled down"

# Reverting the Deployment to what the primary runs is not a new rollout: the Canary is simply Succeeded again.
release podinfo "${promoted_message}" "${promoted_image}" "${PODINFO_COMMAND}"
wait_for_phase canary podinfo 180 Succeeded
[[ "$(httproute_weight podinfo podinfo-canary)" == "0" ]] || fail "the revert sent traffic to the canary"
pass "Gateway API rollback scenario passed"
