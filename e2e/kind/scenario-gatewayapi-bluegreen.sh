#!/usr/bin/env bash
# Scenario (Gateway API): blue/green on an HTTPRoute, as scenario-bluegreen.sh does on a VirtualService.
# Starts from a fresh podinfo-bg (manifests/gatewayapi/bluegreen.yaml) and asserts:
#  1. a healthy release: green previewed with live traffic mirrored (the weighted rule's RequestMirror filter names
#     podinfo-bg-canary; Prometheus sees green answer while its weight is 0), then WaitingPromotion, blue untouched;
#  2. `kubectl coalmine promote`: green's weight goes 0 → 100 in one step, then Succeeded, blue runs the new release,
#     the HTTPRoute is back on blue and green is scaled to 0;
#  3. a faulty release: Failed in pre-promotion analysis, green's weight never left 0, blue keeps the traffic.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools kubectl kubectl-coalmine python3

NAME=podinfo-bg
MANIFEST="${MANIFESTS}/gatewayapi/bluegreen.yaml"

log "starting from a fresh ${NAME}"
kubectl delete -f "${MANIFEST}" --ignore-not-found --wait=true --timeout=180s
kubectl -n "${NAMESPACE}" wait --for=delete "deployment/${NAME}-primary" --timeout=180s 2>/dev/null || true
kubectl apply -f "${MANIFEST}"
wait_for_phase bluegreen "${NAME}" 300 Initialized
kubectl -n "${NAMESPACE}" rollout status "deployment/${NAME}-primary" --timeout=300s
kubectl -n "${NAMESPACE}" rollout status deployment/loadgen-bg-gw --timeout=300s
[[ "$(httproute_weight "${NAME}" "${NAME}-primary")" == "100" ]] || fail "HTTPRoute ${NAME} does not send 100% to blue"
wait_until 240 "Prometheus to see traffic to ${NAME}-primary" prom_positive "$(istio_requests "${NAME}-primary")"
blue_image="$(container_field "${NAME}-primary" .image)"
blue_message="$(release_message "${NAME}-primary")"

# 1. A healthy release: mirrored preview, pre-promotion analysis, then a wait for a person.
message="bluegreen-$(date +%s)"
release "${NAME}" "${message}" "${blue_image}" "${PODINFO_COMMAND}"
wait_for_phase bluegreen "${NAME}" 180 Progressing WaitingPromotion
observe_route_until 600 bluegreen "${NAME}" WaitingPromotion Failed Succeeded
[[ "$(phase bluegreen "${NAME}")" == "WaitingPromotion" ]] ||
  fail "a healthy release ended $(phase bluegreen "${NAME}") instead of waiting for promotion"
[[ "${SEEN_WEIGHTS}" == " 0 " ]] || fail "green got live traffic before the switch (weights seen:${SEEN_WEIGHTS})"
[[ "${SEEN_MIRROR}" == "yes" ]] || fail "the HTTPRoute never mirrored traffic to ${NAME}-canary"
prom_positive "$(istio_requests "${NAME}" '2..' 1m)" || fail "Prometheus saw no mirrored requests answered by green"
[[ "$(release_message "${NAME}-primary")" == "${blue_message}" ]] || fail "blue changed before the switch"
pass "green previewed on mirrored traffic and passed pre-promotion analysis; blue untouched"

# 2. A person promotes: one-step switch, post-promotion analysis, blue takes green's spec, green scaled down.
log "kubectl coalmine promote ${NAME}"
kubectl coalmine promote "${NAME}" -n "${NAMESPACE}" --wait 60s
observe_route_until 900 bluegreen "${NAME}" Succeeded Failed
[[ "$(phase bluegreen "${NAME}")" == "Succeeded" ]] || fail "the promoted release ended $(phase bluegreen "${NAME}")"
for weight in ${SEEN_WEIGHTS}; do
  [[ "${weight}" == "0" || "${weight}" == "100" ]] || fail "the switch was not one step: green weight ${weight}% seen"
done
[[ "${SEEN_WEIGHTS}" == *" 100 "* ]] || fail "traffic never switched to green (weights seen:${SEEN_WEIGHTS})"
[[ "$(release_message "${NAME}-primary")" == "${message}" ]] ||
  fail "blue runs $(release_message "${NAME}-primary"), not ${message}"
[[ "$(httproute_weight "${NAME}" "${NAME}-primary")" == "100" ]] || fail "traffic is not back on blue"
[[ -z "$(httproute_mirror "${NAME}")" ]] || fail "the HTTPRoute still mirrors to green after the promotion"
wait_until 120 "green ${NAME} to be scaled to 0" replicas_are "${NAME}" 0
kubectl -n "${NAMESPACE}" wait --for=condition=Ready "bluegreen/${NAME}" --timeout=60s
pass "switched 0 → 100 in one step, blue promoted to ${message}, green scaled down"

# 3. A faulty release: fails in pre-promotion analysis; live traffic never leaves blue.
release "${NAME}" "faulty-$(date +%s)" "${blue_image}" "${PODINFO_FAULTY_COMMAND}"
wait_for_phase bluegreen "${NAME}" 180 Progressing WaitingPromotion Failed
observe_route_until 600 bluegreen "${NAME}" Failed Succeeded WaitingPromotion
[[ "$(phase bluegreen "${NAME}")" == "Failed" ]] || fail "the faulty release ended $(phase bluegreen "${NAME}")"
[[ "${SEEN_WEIGHTS}" == " 0 " ]] || fail "green got live traffic during a failed preview (weights:${SEEN_WEIGHTS})"
[[ "$(release_message "${NAME}-primary")" == "${message}" ]] || fail "the faulty release reached blue"
[[ "$(httproute_weight "${NAME}" "${NAME}-primary")" == "100" ]] || fail "blue does not have all the traffic"
wait_until 120 "green ${NAME} to be scaled to 0" replicas_are "${NAME}" 0
pass "Gateway API bluegreen scenario passed"
