#!/usr/bin/env bash
# Scenario: a healthy release is promoted.
# Bumps podinfo's image (and its release message) and asserts: the operator picks the revision up, the Canary ends
# Succeeded with kstatus Ready=True, the primary runs the new image and message, all traffic is back on the primary
# and the canary (the target) is scaled to 0.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools kubectl kubectl-coalmine

kubectl apply -f "${MANIFESTS}/canary.yaml"
wait_for_phase canary podinfo 300 Initialized Succeeded Failed

image="${PODINFO_REPOSITORY}:${PODINFO_NEXT_TAG}"
message="promote-$(date +%s)"
release podinfo "${message}" "${image}" "${PODINFO_COMMAND}"

log "waiting for the rollout to end (kubectl coalmine status)"
set +e
kubectl coalmine status podinfo -n "${NAMESPACE}" --timeout 15m
code=$?
set -e
case "${code}" in
  0) pass "kubectl coalmine status: Succeeded" ;;
  1) fail "the rollout of a healthy release failed (phase $(phase canary podinfo))" ;;
  *) fail "the rollout did not end within 15m (phase $(phase canary podinfo))" ;;
esac

# kstatus: Flux, Argo CD and `kubectl wait` read the same condition.
kubectl -n "${NAMESPACE}" wait --for=condition=Ready canary/podinfo --timeout=60s
[[ "$(phase canary podinfo)" == "Succeeded" ]] || fail "phase is $(phase canary podinfo), not Succeeded"
[[ "$(container_field podinfo-primary .image)" == "${image}" ]] ||
  fail "podinfo-primary runs $(container_field podinfo-primary .image), not ${image}"
[[ "$(release_message podinfo-primary)" == "${message}" ]] ||
  fail "podinfo-primary runs release $(release_message podinfo-primary), not ${message}"
pass "podinfo-primary runs ${image} (${message})"
[[ "$(route_weight podinfo podinfo-primary)" == "100" && "$(route_weight podinfo podinfo-canary)" == "0" ]] ||
  fail "traffic is not back on the primary (primary $(route_weight podinfo podinfo-primary)%)"
wait_until 120 "the target podinfo to be scaled to 0" replicas_are podinfo 0
pass "promote scenario passed"
