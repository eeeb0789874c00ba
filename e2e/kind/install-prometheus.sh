#!/usr/bin/env bash
# Install Istio's Prometheus addon (istio-system/prometheus, port 9090). It scrapes the sidecars' merged metrics,
# so istio_requests_total and istio_request_duration_milliseconds_bucket are there for the operator's queries.
# Uses ${ISTIO_DIR}/samples/addons/prometheus.yaml from an unpacked Istio release if ISTIO_DIR is set, otherwise the
# manifest of the matching Istio release branch on GitHub.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools kubectl python3

manifest="https://raw.githubusercontent.com/istio/istio/release-${ISTIO_VERSION%.*}/samples/addons/prometheus.yaml"
if [[ -n "${ISTIO_DIR:-}" && -f "${ISTIO_DIR}/samples/addons/prometheus.yaml" ]]; then
  manifest="${ISTIO_DIR}/samples/addons/prometheus.yaml"
fi
log "installing Prometheus from ${manifest}"
kubectl apply -f "${manifest}"
kubectl -n istio-system rollout status deployment/prometheus --timeout=300s

ready() {
  kubectl get --raw "/api/v1/namespaces/istio-system/services/prometheus:9090/proxy/-/ready"
}
wait_until 120 "Prometheus to answer /-/ready" ready
pass "Prometheus is ready at ${PROMETHEUS_URL}"
