#!/usr/bin/env bash
# The whole e2e run: cluster, Istio, Prometheus, the operator image and chart, the demo, then every scenario.
# On failure, logs are collected in $E2E_LOG_DIR before anything is torn down. The cluster is deleted at the end
# unless KEEP_CLUSTER=1 (then re-running reuses it). Run a subset with SCENARIOS="promote rollback".
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

E2E_LOG_DIR="${E2E_LOG_DIR:-${TMPDIR:-/tmp}/coalmine-e2e-logs-$(date -u +%Y%m%dT%H%M%SZ)}"
KEEP_CLUSTER="${KEEP_CLUSTER:-0}"
SCENARIOS="${SCENARIOS:-promote rollback manual-gate bluegreen}"
# Wall-clock limit of each step, so a wedged step ends the run instead of hanging it.
STEP_TIMEOUT="${STEP_TIMEOUT:-1800}"

require_tools docker kind kubectl helm istioctl python3
if ! command -v kubectl-coalmine >/dev/null 2>&1; then
  fail "kubectl-coalmine is not on PATH: install the project (make test creates .venv, or pip install -e .)"
fi

current_step="(none)"
on_exit() {
  local code=$?
  if ((code != 0)); then
    printf '\n✖ e2e failed in step: %s (exit %d)\n' "${current_step}" "${code}" >&2
    collect_logs "${E2E_LOG_DIR}"
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
step install-istio
step install-prometheus
step build-and-load
step install-coalmine
step deploy-demo
for scenario in ${SCENARIOS}; do
  step "scenario-${scenario}"
done
current_step="(done)"
pass "all e2e scenarios passed: ${SCENARIOS}"
