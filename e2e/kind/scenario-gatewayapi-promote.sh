#!/usr/bin/env bash
# Scenario (Gateway API): a healthy release is promoted.
# Bumps podinfo's image (and its release message) and asserts: the HTTPRoute's weighted rule shows the canary's
# steps (20, 40, 60) on the way, the Canary ends Succeeded with kstatus Ready=True, the primary runs the new image and
# message, the HTTPRoute is back to primary 100 / canary 0 and the target is scaled to 0.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools kubectl kubectl-coalmine

kubectl apply -f "${MANIFESTS}/gatewayapi/canary.yaml"
wait_for_phase canary podinfo 300 Initialized Succeeded Failed

image="${PODINFO_REPOSITORY}:${PODINFO_NEXT_TAG}"
message="promote-$(date +%s)"
release podinfo "${message}" "${image}" "${PODINFO_COMMAND}"
wait_for_phase canary podinfo 180 Progressing Succeeded Failed
observe_route_until 900 canary podinfo Succeeded Failed
[[ "$(phase canary podinfo)" == "Succeeded" ]] || fail "the rollout of a healthy release ended $(phase canary podinfo)"
for weight in 20 40 60; do
  [[ "${SEEN_WEIGHTS}" == *" ${weight} "* ]] ||
    fail "the HTTPRoute never sent ${weight}% to the canary (weights seen:${SEEN_WEIGHTS})"
done

kubectl -n "${NAMESPACE}" wait --for=condition=Ready canary/podinfo --timeout=60s
[[ "$(container_field podinfo-primary .image)" == "${image}" ]] ||
  fail "podinfo-primary runs $(container_field podinfo-primary .image), not ${image}"
[[ "$(release_message podinfo-primary)" == "${message}" ]] ||
  fail "podinfo-primary runs release $(release_message podinfo-primary), not ${message}"
[[ "$(httproute_weight podinfo podinfo-primary)" == "100" && "$(httproute_weight podinfo podinfo-canary)" == "0" ]] ||
  fail "the HTTPRoute is not back on the primary (primary $(httproute_weight podinfo podinfo-primary)%)"
wait_until 120 "the target podinfo to be scaled to 0" replicas_are podinfo 0
pass "Gateway API promote scenario passed: steps${SEEN_WEIGHTS}on the HTTPRoute, podinfo-primary runs ${message}"
