#!/usr/bin/env bash
# Install (or upgrade) the operator from charts/coalmine with the image built by build-and-load.sh and Istio's
# Prometheus as the default metrics server.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools helm kubectl

# Helm installs crds/ on the first install only; applying them first keeps a re-run on an old cluster current.
# crds/ is the source of truth; the chart's copy adds kopf's peering CRDs.
kubectl apply --server-side --force-conflicts -f "${REPO_ROOT}/crds/" -f "${REPO_ROOT}/charts/coalmine/crds/"
kubectl wait --for=condition=Established --timeout=60s \
  crd/canaries.coalmine.dev crd/bluegreens.coalmine.dev crd/metrictemplates.coalmine.dev crd/alertproviders.coalmine.dev

log "installing the chart (image ${COALMINE_IMAGE}, metrics server ${PROMETHEUS_URL})"
helm upgrade --install coalmine "${REPO_ROOT}/charts/coalmine" \
  --namespace "${COALMINE_NAMESPACE}" --create-namespace \
  -f "${E2E_DIR}/values-e2e.yaml" \
  --set image.repository="${COALMINE_IMAGE%:*}" \
  --set image.tag="${COALMINE_IMAGE##*:}" \
  --set operator.metricsServer="${PROMETHEUS_URL}" \
  --wait --timeout 5m
kubectl -n "${COALMINE_NAMESPACE}" rollout status deployment/coalmine --timeout=300s
kubectl -n "${COALMINE_NAMESPACE}" get pods -l app.kubernetes.io/instance=coalmine -o wide
pass "Coalmine is running in ${COALMINE_NAMESPACE}"
