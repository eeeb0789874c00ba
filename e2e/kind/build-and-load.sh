#!/usr/bin/env bash
# Build the operator image from the repository's Dockerfile and load it into the kind node (no registry needed;
# the chart is installed with image.pullPolicy=Never, so the cluster can only use this very image).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools docker kind

log "building ${COALMINE_IMAGE} from ${REPO_ROOT}/Dockerfile"
docker build -t "${COALMINE_IMAGE}" -f "${REPO_ROOT}/Dockerfile" "${REPO_ROOT}"
log "loading ${COALMINE_IMAGE} into kind cluster ${CLUSTER_NAME}"
kind load docker-image "${COALMINE_IMAGE}" --name "${CLUSTER_NAME}"
pass "image ${COALMINE_IMAGE} is on the kind node"
