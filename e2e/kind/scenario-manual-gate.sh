#!/usr/bin/env bash
# Scenario: a rollout waits for a person at a `pause: {}` step.
# Switches the Canary to manifests/canary-manual-gate.yaml (20 %, pause, 50 %), releases a new revision and asserts:
# the Canary reaches WaitingPromotion at 20 % and stays there (no promotion, no deadline) while nobody acts;
# `kubectl coalmine promote` is carried out by the operator; the rollout then ends Succeeded with the new release
# on the primary. Restores manifests/canary.yaml at the end.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools kubectl kubectl-coalmine

kubectl apply -f "${MANIFESTS}/canary-manual-gate.yaml"
wait_for_phase canary podinfo 300 Initialized Succeeded Failed
before="$(release_message podinfo-primary)"
image="$(container_field podinfo-primary .image)"

message="gated-$(date +%s)"
release podinfo "${message}" "${image}" "${PODINFO_COMMAND}"
wait_for_phase canary podinfo 600 WaitingPromotion
[[ "$(route_weight podinfo podinfo-canary)" == "20" ]] ||
  fail "waiting at the pause, the canary has $(route_weight podinfo podinfo-canary)%, not 20%"

# Four analysis intervals: a gate that waits for a person must neither advance nor time out on its own.
log "checking that the rollout holds for 60s without a person"
sleep 60
[[ "$(phase canary podinfo)" == "WaitingPromotion" ]] ||
  fail "the rollout left the manual pause on its own (phase $(phase canary podinfo))"
[[ "$(route_weight podinfo podinfo-canary)" == "20" ]] || fail "the weight moved during the manual pause"
[[ "$(release_message podinfo-primary)" == "${before}" ]] || fail "the primary was promoted before approval"
pass "WaitingPromotion at 20% for 60s, primary untouched"

log "kubectl coalmine promote"
kubectl coalmine promote podinfo -n "${NAMESPACE}" --wait 60s

set +e
kubectl coalmine status podinfo -n "${NAMESPACE}" --timeout 10m
code=$?
set -e
[[ "${code}" == "0" ]] || fail "after promote the rollout did not succeed (phase $(phase canary podinfo))"
[[ "$(release_message podinfo-primary)" == "${message}" ]] ||
  fail "podinfo-primary runs $(release_message podinfo-primary), not ${message}"
[[ "$(route_weight podinfo podinfo-primary)" == "100" ]] || fail "traffic is not back on the primary"
request_id="$(kubectl -n "${NAMESPACE}" get canary podinfo -o jsonpath='{.status.lastRequestId}')"
[[ -n "${request_id}" ]] || fail "status.lastRequestId is empty: the operator did not record the promote request"
pass "promoted after approval (request ${request_id}); primary runs ${message}"

kubectl apply -f "${MANIFESTS}/canary.yaml"
pass "manual-gate scenario passed"
