#!/usr/bin/env bash
# Delete the kind cluster and its kubeconfig. Safe to run when the cluster does not exist.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools kind

if kind get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; then
  log "deleting the kind cluster ${CLUSTER_NAME}"
  kind delete cluster --name "${CLUSTER_NAME}" --kubeconfig "${KUBECONFIG}"
else
  log "no kind cluster named ${CLUSTER_NAME}"
fi
rm -f "${KUBECONFIG}"
pass "torn down"
