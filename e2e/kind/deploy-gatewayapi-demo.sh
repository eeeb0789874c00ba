#!/usr/bin/env bash
# Deploy the Gateway API demo: podinfo (manifests/podinfo.yaml), its Canary on Gateway API
# (manifests/gatewayapi/canary.yaml: provider gatewayapi:v1, HTTPRoute `podinfo` on the Gateway for app.example.com)
# and a load generator calling the Gateway. Waits until the Canary is initialised (primary serving, target scaled
# to 0), the Gateway has accepted the route, and Prometheus sees the traffic the Gateway sends to the primary.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools kubectl python3

kubectl apply -f "${MANIFESTS}/namespace.yaml"
kubectl apply -f "${MANIFESTS}/podinfo.yaml"
kubectl -n "${NAMESPACE}" rollout status deployment/podinfo --timeout=300s
kubectl apply -f "${MANIFESTS}/gatewayapi/canary.yaml"
# Failed and Succeeded too: a re-run on a cluster where the scenarios already ran finds the Canary at rest.
wait_for_phase canary podinfo 300 Initialized Succeeded Failed
kubectl -n "${NAMESPACE}" rollout status deployment/podinfo-primary --timeout=300s

[[ "$(httproute_weight podinfo podinfo-primary)" == "100" ]] || fail "the HTTPRoute does not send 100% to the primary"
[[ "$(httproute_weight podinfo podinfo-canary)" == "0" ]] || fail "the HTTPRoute sends traffic to the canary"
[[ "$(replicas podinfo)" == "0" ]] || fail "the target podinfo was not scaled to 0 after initialisation"
route_accepted() {
  [[ "$(kubectl -n "${NAMESPACE}" get httproutes.gateway.networking.k8s.io podinfo \
    -o jsonpath='{.status.parents[?(@.parentRef.name=="gateway")].conditions[?(@.type=="Accepted")].status}')" == "True" ]]
}
wait_until 120 "Gateway istio-ingress/gateway to accept HTTPRoute podinfo" route_accepted
pass "Canary initialised: HTTPRoute accepted by the Gateway, primary 100%, target scaled to 0"

kubectl apply -f "${MANIFESTS}/gatewayapi/loadgen.yaml"
kubectl -n "${NAMESPACE}" rollout status deployment/loadgen-gw --timeout=300s
wait_until 240 "Prometheus to see traffic to podinfo-primary through the Gateway (istio_requests_total)" \
  prom_positive "$(istio_requests podinfo-primary)"
pass "traffic flows through the Gateway to podinfo-primary and Prometheus records it"
