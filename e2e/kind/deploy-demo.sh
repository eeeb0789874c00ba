#!/usr/bin/env bash
# Deploy the demo: podinfo, its Canary and an in-cluster load generator calling the apex Service. Waits until the
# Canary is initialised (primary serving, target scaled to 0) and Prometheus sees the mesh's traffic to the primary.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools kubectl python3

kubectl apply -f "${MANIFESTS}/namespace.yaml"
kubectl apply -f "${MANIFESTS}/podinfo.yaml"
kubectl -n "${NAMESPACE}" rollout status deployment/podinfo --timeout=300s
kubectl apply -f "${MANIFESTS}/canary.yaml"
# Failed and Succeeded too: a re-run on a cluster where the scenarios already ran finds the Canary at rest.
wait_for_phase canary podinfo 300 Initialized Succeeded Failed
kubectl -n "${NAMESPACE}" rollout status deployment/podinfo-primary --timeout=300s

[[ "$(route_weight podinfo podinfo-primary)" == "100" ]] || fail "the VirtualService does not send 100% to the primary"
[[ "$(replicas podinfo)" == "0" ]] || fail "the target podinfo was not scaled to 0 after initialisation"
pass "Canary initialised: primary serves 100%, target scaled to 0"

kubectl apply -f "${MANIFESTS}/loadgen.yaml"
kubectl -n "${NAMESPACE}" rollout status deployment/loadgen --timeout=300s
wait_until 240 "Prometheus to see traffic to podinfo-primary (istio_requests_total)" \
  prom_positive "$(istio_requests podinfo-primary)"
pass "traffic flows through the mesh to podinfo-primary and Prometheus records it"
