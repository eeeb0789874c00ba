#!/usr/bin/env bash
# Scenario: blue/green with a mirrored preview, manual promotion, and a faulty release that never gets traffic.
# Starts from a fresh podinfo-bg (manifests/bluegreen.yaml, see docs/bluegreen.md) and asserts:
#  1. a healthy release: green is previewed with all live traffic mirrored (Prometheus sees requests to green while
#     its weight is 0), passes pre-promotion analysis and waits in WaitingPromotion with blue untouched;
#  2. `kubectl coalmine promote`: traffic flips 0 → 100 % in one step (no weight in between is ever seen), then
#     Succeeded, blue runs the new release, all traffic is back on blue and green is scaled to 0;
#  3. a faulty release (--random-error): Failed during pre-promotion analysis, green's weight never left 0, blue
#     still runs the last promoted release.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools kubectl kubectl-coalmine python3

NAME=podinfo-bg
GREEN=podinfo-bg-canary

# observe_until SECONDS PHASE...: poll every 2 s until the BlueGreen is in one of PHASE..., recording every green
# weight the VirtualService showed (SEEN_WEIGHTS) and whether green was mirrored to (SEEN_MIRROR).
observe_until() {
  local timeout="$1"
  shift
  local deadline=$((SECONDS + timeout)) weight mirror
  SEEN_WEIGHTS=" "
  SEEN_MIRROR=no
  log "watching bluegreen/${NAME} until it is $* (up to ${timeout}s)"
  until phase_is bluegreen "${NAME}" "$@"; do
    weight="$(route_weight "${NAME}" "${GREEN}" 2>/dev/null || true)"
    if [[ -n "${weight}" && "${SEEN_WEIGHTS}" != *" ${weight} "* ]]; then
      SEEN_WEIGHTS+="${weight} "
      log "green weight ${weight}% (phase $(phase bluegreen "${NAME}"))"
    fi
    mirror="$(kubectl -n "${NAMESPACE}" get virtualservices.networking.istio.io "${NAME}" \
      -o jsonpath='{.spec.http[?(@.name=="weighted")].mirror.host}' 2>/dev/null || true)"
    [[ "${mirror}" == "${GREEN}" ]] && SEEN_MIRROR=yes
    if ((SECONDS >= deadline)); then
      fail "timed out after ${timeout}s waiting for bluegreen/${NAME} to be $* (it is '$(phase bluegreen "${NAME}")')"
    fi
    sleep 2
  done
  pass "bluegreen/${NAME} is $(phase bluegreen "${NAME}"); green weights seen:${SEEN_WEIGHTS}"
}

log "starting from a fresh ${NAME}"
kubectl delete -f "${MANIFESTS}/bluegreen.yaml" --ignore-not-found --wait=true --timeout=180s
kubectl -n "${NAMESPACE}" wait --for=delete "deployment/${NAME}-primary" --timeout=180s 2>/dev/null || true
kubectl apply -f "${MANIFESTS}/bluegreen.yaml"
wait_for_phase bluegreen "${NAME}" 300 Initialized
kubectl -n "${NAMESPACE}" rollout status "deployment/${NAME}-primary" --timeout=300s
kubectl -n "${NAMESPACE}" rollout status deployment/loadgen-bg --timeout=300s
wait_until 240 "Prometheus to see traffic to ${NAME}-primary" prom_positive "$(istio_requests "${NAME}-primary")"
blue_image="$(container_field "${NAME}-primary" .image)"
blue_message="$(release_message "${NAME}-primary")"

# 1. A healthy release: preview, pre-promotion analysis, then a wait for a person.
message="bluegreen-$(date +%s)"
release "${NAME}" "${message}" "${blue_image}" "${PODINFO_COMMAND}"
wait_for_phase bluegreen "${NAME}" 180 Progressing WaitingPromotion
observe_until 600 WaitingPromotion Failed Succeeded
[[ "$(phase bluegreen "${NAME}")" == "WaitingPromotion" ]] ||
  fail "a healthy release ended $(phase bluegreen "${NAME}") instead of waiting for promotion"
[[ "${SEEN_WEIGHTS}" == " 0 " ]] || fail "green got live traffic before the switch (weights seen:${SEEN_WEIGHTS})"
[[ "${SEEN_MIRROR}" == "yes" ]] || fail "the preview never mirrored traffic to ${GREEN}"
prom_positive "$(istio_requests "${NAME}" '2..' 1m)" || fail "Prometheus saw no mirrored requests answered by green"
[[ "$(release_message "${NAME}-primary")" == "${blue_message}" ]] || fail "blue changed before the switch"
pass "green previewed on mirrored traffic and passed pre-promotion analysis; blue untouched"

sleep 30
[[ "$(phase bluegreen "${NAME}")" == "WaitingPromotion" ]] ||
  fail "autoPromotion is disabled, yet the BlueGreen left WaitingPromotion on its own"

# 2. A person promotes: one-step switch, post-promotion analysis, blue takes green's spec, green scaled down.
log "kubectl coalmine promote ${NAME}"
kubectl coalmine promote "${NAME}" -n "${NAMESPACE}" --wait 60s
observe_until 900 Succeeded Failed
[[ "$(phase bluegreen "${NAME}")" == "Succeeded" ]] || fail "the promoted release ended $(phase bluegreen "${NAME}")"
for weight in ${SEEN_WEIGHTS}; do
  [[ "${weight}" == "0" || "${weight}" == "100" ]] || fail "the switch was not one step: green weight ${weight}% seen"
done
[[ "${SEEN_WEIGHTS}" == *" 100 "* ]] || fail "traffic never switched to green (weights seen:${SEEN_WEIGHTS})"
[[ "$(release_message "${NAME}-primary")" == "${message}" ]] ||
  fail "blue runs $(release_message "${NAME}-primary"), not ${message}"
[[ "$(route_weight "${NAME}" "${NAME}-primary")" == "100" ]] || fail "traffic is not back on blue"
wait_until 120 "green ${NAME} to be scaled to 0" replicas_are "${NAME}" 0
kubectl -n "${NAMESPACE}" wait --for=condition=Ready "bluegreen/${NAME}" --timeout=60s
pass "switched 0 → 100 in one step, blue promoted to ${message}, green scaled down"

# 3. A faulty release: fails in pre-promotion analysis; live traffic never leaves blue.
release "${NAME}" "faulty-$(date +%s)" "${blue_image}" "${PODINFO_FAULTY_COMMAND}"
wait_for_phase bluegreen "${NAME}" 180 Progressing WaitingPromotion Failed
observe_until 600 Failed Succeeded WaitingPromotion
[[ "$(phase bluegreen "${NAME}")" == "Failed" ]] || fail "the faulty release ended $(phase bluegreen "${NAME}")"
[[ "${SEEN_WEIGHTS}" == " 0 " ]] || fail "green got live traffic during a failed preview (weights:${SEEN_WEIGHTS})"
[[ "$(release_message "${NAME}-primary")" == "${message}" ]] || fail "the faulty release reached blue"
[[ "$(route_weight "${NAME}" "${NAME}-primary")" == "100" ]] || fail "blue does not have all the traffic"
wait_until 120 "green ${NAME} to be scaled to 0" replicas_are "${NAME}" 0
pass "the faulty release failed in preview; blue kept all the traffic"
pass "bluegreen scenario passed"
