#!/usr/bin/env bash
# Create the kind cluster (or reuse it if it already exists) and write its kubeconfig to $KUBECONFIG (see lib.sh),
# leaving ~/.kube/config alone.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools docker kind kubectl
docker info >/dev/null 2>&1 || fail "docker info failed: kind needs a running Docker engine"

mkdir -p "$(dirname "${KUBECONFIG}")"
if kind get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; then
  log "reusing the kind cluster ${CLUSTER_NAME}"
  kind export kubeconfig --name "${CLUSTER_NAME}" --kubeconfig "${KUBECONFIG}"
else
  log "creating the kind cluster ${CLUSTER_NAME}"
  image_args=()
  [[ -n "${KIND_NODE_IMAGE}" ]] && image_args=(--image "${KIND_NODE_IMAGE}")
  kind create cluster --name "${CLUSTER_NAME}" --config "${E2E_DIR}/kind-config.yaml" \
    --kubeconfig "${KUBECONFIG}" --wait 180s ${image_args[@]+"${image_args[@]}"}
fi

kubectl wait --for=condition=Ready nodes --all --timeout=180s
kubectl version
pass "cluster ${CLUSTER_NAME} is ready (KUBECONFIG=${KUBECONFIG})"
