#!/usr/bin/env bash
# Install Istio's control plane (profile minimal: istiod only; the demo's traffic stays inside the mesh, so no
# ingress gateway is needed) and create the demo namespace with sidecar injection on.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools istioctl kubectl

client_version="$(istioctl version --remote=false 2>/dev/null | head -n 1 || true)"
log "installing Istio with istioctl ${client_version:-(version unknown)} (expected ${ISTIO_VERSION})"
if [[ "${client_version}" != *"${ISTIO_VERSION%.*}"* ]]; then
  printf 'warning: istioctl is not %s; the scenarios were written for Istio %s\n' \
    "${ISTIO_VERSION}" "${ISTIO_VERSION%.*}" >&2
fi

istioctl install -y --set profile=minimal \
  --set values.pilot.resources.requests.cpu=100m \
  --set values.pilot.resources.requests.memory=256Mi
kubectl -n istio-system rollout status deployment/istiod --timeout=300s
kubectl wait --for=condition=Established --timeout=60s \
  crd/virtualservices.networking.istio.io crd/destinationrules.networking.istio.io

kubectl apply -f "${MANIFESTS}/namespace.yaml"
injection="$(kubectl get namespace "${NAMESPACE}" -o jsonpath='{.metadata.labels.istio-injection}')"
[[ "${injection}" == "enabled" ]] || fail "namespace ${NAMESPACE} is not labelled istio-injection=enabled"
pass "Istio is installed; namespace ${NAMESPACE} has sidecar injection"
