#!/usr/bin/env bash
# Install the Gateway API standard CRDs (pinned: GATEWAY_API_VERSION), then Istio (install-istio.sh) as the Gateway
# API implementation, then the demo's Gateway (manifests/gatewayapi/gateway.yaml, class `istio`), and wait until
# Istio has programmed it. The CRDs go first so istiod finds them when it starts.
#
# Versions: v1.5.1 is the release whose standard channel matches ../../../shared/reference/crds/gateway-api/ (a
# dev snapshot of the v1.5 line: ReferenceGrant v1, the CORS filter and ListenerSet are standard there). Coalmine's
# HTTPRoute needs at least v1.4 (named rules are standard from v1.4; older CRDs prune `rules[].name`). Istio 1.24
# was built against Gateway API v1.2 and istiod before 1.27.9 fails at startup on the v1.5 CRDs (Istio 1.27.9
# release notes, istio/istio#59443), hence the minimum below; run-all-gatewayapi.sh defaults ISTIO_VERSION to it.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.5.1}"
# A local copy of standard-install.yaml, for machines without access to github.com.
GATEWAY_API_MANIFEST="${GATEWAY_API_MANIFEST:-https://github.com/kubernetes-sigs/gateway-api/releases/download/${GATEWAY_API_VERSION}/standard-install.yaml}"
MIN_ISTIO_FOR_GATEWAY_API="1.27.9"

require_tools istioctl kubectl python3

# version_at_least VERSION MINIMUM: succeeds when the dotted VERSION (a leading v or suffix is ignored) >= MINIMUM.
version_at_least() {
  python3 - "$1" "$2" <<'PY'
import re, sys
def parts(text):
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(p or 0) for p in match.groups()) if match else (0, 0, 0)
sys.exit(0 if parts(sys.argv[1]) >= parts(sys.argv[2]) else 1)
PY
}

client_version="$(istioctl version --remote=false 2>/dev/null | head -n 1 || true)"
if ! version_at_least "${client_version}" "${MIN_ISTIO_FOR_GATEWAY_API}"; then
  fail "istioctl is '${client_version:-unknown}': Gateway API ${GATEWAY_API_VERSION} needs Istio ${MIN_ISTIO_FOR_GATEWAY_API} or newer (set ISTIO_VERSION and put that istioctl on PATH; see README.md)"
fi

log "installing the Gateway API ${GATEWAY_API_VERSION} standard CRDs from ${GATEWAY_API_MANIFEST}"
kubectl apply --server-side --force-conflicts -f "${GATEWAY_API_MANIFEST}"
kubectl wait --for=condition=Established --timeout=60s \
  crd/gatewayclasses.gateway.networking.k8s.io crd/gateways.gateway.networking.k8s.io \
  crd/httproutes.gateway.networking.k8s.io crd/referencegrants.gateway.networking.k8s.io \
  crd/grpcroutes.gateway.networking.k8s.io
bundle="$(kubectl get crd httproutes.gateway.networking.k8s.io \
  -o jsonpath='{.metadata.annotations.gateway\.networking\.k8s\.io/bundle-version}')"
channel="$(kubectl get crd httproutes.gateway.networking.k8s.io \
  -o jsonpath='{.metadata.annotations.gateway\.networking\.k8s\.io/channel}')"
[[ "${bundle}" == "${GATEWAY_API_VERSION}" && "${channel}" == "standard" ]] ||
  fail "the HTTPRoute CRD is ${bundle:-unknown} (${channel:-unknown} channel), not ${GATEWAY_API_VERSION} standard"
pass "Gateway API ${bundle} (${channel}) CRDs established"

"${E2E_DIR}/install-istio.sh"

gatewayclass_accepted() {
  [[ "$(kubectl get gatewayclass istio \
    -o jsonpath='{.status.conditions[?(@.type=="Accepted")].status}')" == "True" ]]
}
wait_until 120 "istiod to create and accept GatewayClass istio" gatewayclass_accepted

kubectl apply -f "${MANIFESTS}/gatewayapi/gateway.yaml"
kubectl -n istio-ingress wait --for=condition=Programmed gateway/gateway --timeout=300s
kubectl -n istio-ingress rollout status deployment/gateway-istio --timeout=300s
kubectl -n istio-ingress get gateway gateway -o wide
pass "Gateway istio-ingress/gateway is programmed (Service gateway-istio)"
