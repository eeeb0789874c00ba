#!/usr/bin/env bash
# Scenario: a faulty release is rolled back.
# Releases podinfo with --random-error (a share of its answers are 5xx) and asserts: Prometheus saw the canary's
# 5xx, the Canary ends Failed with Stalled=True, the primary still runs the last promoted release, the canary weight
# is 0 in the status and in the VirtualService, and the target is scaled to 0. Then reverts the Deployment to the
# promoted release and asserts the Canary returns to Succeeded without a new rollout.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools kubectl kubectl-coalmine python3

kubectl apply -f "${MANIFESTS}/canary.yaml"
wait_for_phase canary podinfo 300 Initialized Succeeded Failed
if phase_is canary podinfo Failed; then
  fail "the Canary is Failed before the scenario starts; run scenario-promote.sh first (or redeploy the demo)"
fi

# What production runs now, and what a revert goes back to.
promoted_image="$(container_field podinfo-primary .image)"
promoted_message="$(release_message podinfo-primary)"
log "podinfo-primary runs ${promoted_image} (${promoted_message})"

release podinfo "faulty-$(date +%s)" "${promoted_image}" "${PODINFO_FAULTY_COMMAND}"

log "waiting for the rollout to end (kubectl coalmine status)"
set +e
kubectl coalmine status podinfo -n "${NAMESPACE}" --timeout 15m
code=$?
set -e
case "${code}" in
  1) pass "kubectl coalmine status: Failed" ;;
  0) fail "a release answering 5xx was promoted" ;;
  *) fail "the faulty rollout did not end within 15m (phase $(phase canary podinfo))" ;;
esac

[[ "$(phase canary podinfo)" == "Failed" ]] || fail "phase is $(phase canary podinfo), not Failed"
kubectl -n "${NAMESPACE}" wait --for=condition=Stalled canary/podinfo --timeout=60s
prom_positive "$(istio_requests podinfo '5..' 3m)" ||
  fail "Prometheus has no 5xx for the canary: the rollback was not caused by the faulty release's errors"
pass "Prometheus recorded the canary's 5xx"
[[ "$(container_field podinfo-primary .image)" == "${promoted_image}" ]] || fail "the primary's image changed"
[[ "$(release_message podinfo-primary)" == "${promoted_message}" ]] ||
  fail "the faulty release reached the primary ($(release_message podinfo-primary))"
[[ "$(container_field podinfo-primary .command)" != *random-error* ]] || fail "the primary runs --random-error"
pass "the primary still runs ${promoted_message}"
[[ "$(kubectl -n "${NAMESPACE}" get canary podinfo -o jsonpath='{.status.canaryWeight}')" == "0" ]] ||
  fail "status.canaryWeight is not 0 after the rollback"
[[ "$(route_weight podinfo podinfo-primary)" == "100" && "$(route_weight podinfo podinfo-canary)" == "0" ]] ||
  fail "traffic is not all on the primary after the rollback"
wait_until 120 "the target podinfo to be scaled to 0" replicas_are podinfo 0
pass "weight 0, all traffic on the primary, canary scaled down"
kubectl -n "${NAMESPACE}" get events --field-selector involvedObject.name=podinfo \
  --sort-by=.lastTimestamp | tail -n 15 || true

# Reverting the Deployment to what the primary runs is not a new rollout: the Canary is simply Succeeded again.
release podinfo "${promoted_message}" "${promoted_image}" "${PODINFO_COMMAND}"
wait_for_phase canary podinfo 180 Succeeded
[[ "$(route_weight podinfo podinfo-canary)" == "0" ]] || fail "the revert sent traffic to the canary"
pass "rollback scenario passed"
