#!/usr/bin/env bash
# The Gateway API variant of run-all.sh: cluster, Gateway API CRDs + Istio as their implementation + the Gateway,
# Prometheus, the operator image and chart, the demo on an HTTPRoute, then every scenario. Every Canary and
# BlueGreen it applies says `provider: gatewayapi:v1`, so the chart is installed exactly as in run-all.sh.
# On failure, logs are collected in $E2E_LOG_DIR (with the HTTPRoutes, Gateways and the Gateway's proxy log) before
# anything is torn down. The cluster is deleted at the end unless KEEP_CLUSTER=1. Run a subset with
# SCENARIOS="promote ab"; `gamma` (Gateway API for the mesh) is available but not in the default list.
set -euo pipefail

# A cluster and kubeconfig of its own, so a kept Istio e2e cluster is neither reused nor overwritten; and an Istio
# that can run with the Gateway API release install-gateway-api.sh pins (see the comment there). Exported before
# lib.sh reads them, so every step script sees the same.
export CLUSTER_NAME="${CLUSTER_NAME:-coalmine-e2e-gatewayapi}"
export E2E_KUBECONFIG="${E2E_KUBECONFIG:-${XDG_CACHE_HOME:-${HOME}/.cache}/coalmine-e2e-gatewayapi/kubeconfig}"
export ISTIO_VERSION="${ISTIO_VERSION:-1.27.9}"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

E2E_LOG_DIR="${E2E_LOG_DIR:-${TMPDIR:-/tmp}/coalmine-e2e-gatewayapi-logs-$(date -u +%Y%m%dT%H%M%SZ)}"
KEEP_CLUSTER="${KEEP_CLUSTER:-0}"
SCENARIOS="${SCENARIOS:-promote rollback ab bluegreen}"
# Wall-clock limit of each step, so a wedged step ends the run instead of hanging it.
STEP_TIMEOUT="${STEP_TIMEOUT:-1800}"

require_tools docker kind kubectl helm istioctl python3
if ! command -v kubectl-coalmine >/dev/null 2>&1; then
  fail "kubectl-coalmine is not on PATH: install the project (make test creates .venv, or pip install -e .)"
fi

# collect_gatewayapi_logs DIR: what collect_logs (lib.sh) does not know about: routes, Gateways, the Gateway's proxy.
collect_gatewayapi_logs() {
  local dir="$1"
  mkdir -p "${dir}"
  kubectl get gatewayclasses.gateway.networking.k8s.io,gateways.gateway.networking.k8s.io,httproutes.gateway.networking.k8s.io \
    -A -o yaml >"${dir}/gatewayapi-objects.yaml" 2>&1 || true
  kubectl -n istio-ingress logs deployment/gateway-istio --tail=500 >"${dir}/gateway-istio.log" 2>&1 || true
  kubectl get crd -l gateway.networking.k8s.io/bundle-version -o wide >"${dir}/gatewayapi-crds.txt" 2>&1 || true
}

current_step="(none)"
on_exit() {
  local code=$?
  if ((code != 0)); then
    printf '\n✖ Gateway API e2e failed in step: %s (exit %d)\n' "${current_step}" "${code}" >&2
    collect_logs "${E2E_LOG_DIR}"
    collect_gatewayapi_logs "${E2E_LOG_DIR}"
    printf 'logs: %s\n' "${E2E_LOG_DIR}" >&2
  fi
  if [[ "${KEEP_CLUSTER}" != "1" ]]; then
    "${E2E_DIR}/teardown.sh" || true
  else
    printf 'keeping the cluster %s (KUBECONFIG=%s)\n' "${CLUSTER_NAME}" "${KUBECONFIG}" >&2
  fi
  exit "${code}"
}
trap on_exit EXIT

step() {
  current_step="$1"
  log "=== ${current_step} ==="
  if command -v timeout >/dev/null 2>&1; then
    timeout --foreground "${STEP_TIMEOUT}" "${E2E_DIR}/${current_step}.sh"
  else
    # macOS without coreutils: every wait inside the scripts still has its own timeout.
    "${E2E_DIR}/${current_step}.sh"
  fi
}

step create-cluster
step install-gateway-api
step install-prometheus
step build-and-load
step install-coalmine
step deploy-gatewayapi-demo
for scenario in ${SCENARIOS}; do
  step "scenario-gatewayapi-${scenario}"
done
current_step="(done)"
pass "all Gateway API e2e scenarios passed: ${SCENARIOS}"
