#!/usr/bin/env bash
# Scenario (Gateway API): an A/B rollout by header.
# Switches the Canary to manifests/gatewayapi/canary-ab.yaml (analysis.match: X-Canary: insider, 10 looks), starts
# the insiders' load generator (loadgen-ab.yaml) and releases a new revision. Asserts: while the analysis runs the
# HTTPRoute's canary-match rule sends matching requests to the canary (canary 100) and the weighted rule never gives
# the canary anything (weight 0 throughout); Prometheus sees the canary answer them; the Canary ends Succeeded with the
# new release on the primary and the A/B rule back on the primary. Restores canary.yaml and removes loadgen-ab.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools kubectl kubectl-coalmine python3

kubectl apply -f "${MANIFESTS}/gatewayapi/canary-ab.yaml"
wait_for_phase canary podinfo 300 Initialized Succeeded Failed
has_ab_rule() {
  [[ -n "$(httproute_weight podinfo podinfo-primary canary-match)" ]]
}
wait_until 60 "the HTTPRoute to carry the A/B rule canary-match" has_ab_rule
kubectl apply -f "${MANIFESTS}/gatewayapi/loadgen-ab.yaml"
kubectl -n "${NAMESPACE}" rollout status deployment/loadgen-ab --timeout=300s
image="$(container_field podinfo-primary .image)"

message="ab-$(date +%s)"
release podinfo "${message}" "${image}" "${PODINFO_COMMAND}"
wait_for_phase canary podinfo 180 Progressing Succeeded Failed
observe_route_until 900 canary podinfo Succeeded Failed
[[ "$(phase canary podinfo)" == "Succeeded" ]] || fail "the A/B rollout of a healthy release ended $(phase canary podinfo)"
[[ "${SEEN_MATCH}" == *" 100 "* ]] ||
  fail "the A/B rule never sent the insiders to the canary (canary-match weights seen:${SEEN_MATCH})"
[[ "${SEEN_WEIGHTS}" == " 0 " ]] ||
  fail "an A/B rollout moved the weighted split (canary weights seen:${SEEN_WEIGHTS})"
prom_positive "$(istio_requests podinfo '2..' 5m)" || fail "Prometheus saw no answers from the canary to the insiders"
pass "insiders went to the canary, everybody else stayed on the primary"

kubectl -n "${NAMESPACE}" wait --for=condition=Ready canary/podinfo --timeout=60s
[[ "$(release_message podinfo-primary)" == "${message}" ]] ||
  fail "podinfo-primary runs $(release_message podinfo-primary), not ${message}"
[[ "$(httproute_weight podinfo podinfo-canary canary-match)" == "0" ]] ||
  fail "after promotion the A/B rule still sends the insiders to the canary"
[[ "$(httproute_weight podinfo podinfo-primary)" == "100" ]] || fail "the weighted rule is not on the primary"
wait_until 120 "the target podinfo to be scaled to 0" replicas_are podinfo 0

kubectl delete -f "${MANIFESTS}/gatewayapi/loadgen-ab.yaml" --ignore-not-found --wait=true --timeout=120s
kubectl apply -f "${MANIFESTS}/gatewayapi/canary.yaml"
pass "Gateway API A/B scenario passed: podinfo-primary runs ${message}"
