#!/usr/bin/env bash
# Shared settings and helpers for the kind e2e scripts. Every script sources this file; nothing here runs on its own.
#
# Every setting can be overridden from the environment, so the same scripts run against a cluster you already have
# (E2E_KUBECONFIG) or with other versions of the images.
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${E2E_DIR}/../.." && pwd)"
# shellcheck disable=SC2034  # used by the scripts that source this file
MANIFESTS="${E2E_DIR}/manifests"

CLUSTER_NAME="${CLUSTER_NAME:-coalmine-e2e}"
# Empty: kind's default node image for the installed kind version.
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}"
ISTIO_VERSION="${ISTIO_VERSION:-1.24.2}"
COALMINE_IMAGE="${COALMINE_IMAGE:-coalmine:e2e}"
COALMINE_NAMESPACE="${COALMINE_NAMESPACE:-coalmine-system}"
PROMETHEUS_URL="${PROMETHEUS_URL:-http://prometheus.istio-system:9090}"
PODINFO_REPOSITORY="${PODINFO_REPOSITORY:-ghcr.io/stefanprodan/podinfo}"
# The release the promote scenario rolls out (the demo starts on 6.7.0, see manifests/podinfo.yaml).
PODINFO_NEXT_TAG="${PODINFO_NEXT_TAG:-6.7.1}"
# The namespace of the demo; the manifests under manifests/ name it too.
NAMESPACE="test"
# podinfo's command in manifests/podinfo.yaml and manifests/bluegreen.yaml; the faulty release appends
# --random-error (podinfo then answers a share of requests with 5xx), and reverting restores exactly this.
# shellcheck disable=SC2034  # used by the scripts that source this file
PODINFO_COMMAND='["./podinfo","--port=9898","--level=info"]'
# shellcheck disable=SC2034  # used by the scripts that source this file
PODINFO_FAULTY_COMMAND='["./podinfo","--port=9898","--level=info","--random-error=true"]'

# A kubeconfig of its own: the scripts never touch ~/.kube/config or its current context.
export KUBECONFIG="${E2E_KUBECONFIG:-${XDG_CACHE_HOME:-${HOME}/.cache}/coalmine-e2e/kubeconfig}"
# `kubectl coalmine` is the repository's own plugin: prefer the project's virtualenv when there is one.
if [[ -x "${REPO_ROOT}/.venv/bin/kubectl-coalmine" ]]; then
  export PATH="${REPO_ROOT}/.venv/bin:${PATH}"
fi

log() {
  printf '\n[%s] >>> %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
}

pass() {
  printf '[%s] ✔ %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
}

fail() {
  printf '[%s] ✖ %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
  exit 1
}

require_tools() {
  local missing=()
  local tool
  for tool in "$@"; do
    command -v "${tool}" >/dev/null 2>&1 || missing+=("${tool}")
  done
  if ((${#missing[@]})); then
    fail "missing on PATH: ${missing[*]} (see e2e/kind/README.md, Prerequisites)"
  fi
}

# wait_until SECONDS DESCRIPTION COMMAND...: run COMMAND every 3 s until it succeeds; fail after SECONDS.
wait_until() {
  local timeout="$1" description="$2"
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      fail "timed out after ${timeout}s waiting for ${description}"
    fi
    sleep 3
  done
}

# phase KIND NAME: the rollout's status.phase (empty before the operator wrote one).
phase() {
  kubectl -n "${NAMESPACE}" get "$1" "$2" -o jsonpath='{.status.phase}' 2>/dev/null || true
}

phase_is() {
  local kind="$1" name="$2" current
  shift 2
  current="$(phase "${kind}" "${name}")"
  local wanted
  for wanted in "$@"; do
    [[ "${current}" == "${wanted}" ]] && return 0
  done
  return 1
}

# wait_for_phase KIND NAME SECONDS PHASE...: wait until the phase is one of PHASE...
wait_for_phase() {
  local kind="$1" name="$2" timeout="$3"
  shift 3
  log "waiting up to ${timeout}s for ${kind}/${name} to be $*"
  local deadline=$((SECONDS + timeout))
  until phase_is "${kind}" "${name}" "$@"; do
    if ((SECONDS >= deadline)); then
      fail "timed out after ${timeout}s waiting for ${kind}/${name} to be $* (it is '$(phase "${kind}" "${name}")')"
    fi
    sleep 3
  done
  pass "${kind}/${name} is $(phase "${kind}" "${name}")"
}

# container_field DEPLOYMENT JSONPATH: a field of the deployment's first container, e.g. '.image'.
container_field() {
  kubectl -n "${NAMESPACE}" get deployment "$1" -o jsonpath="{.spec.template.spec.containers[0]$2}"
}

# release_message DEPLOYMENT: the PODINFO_UI_MESSAGE the deployment's pods run with; each release sets a new one.
release_message() {
  container_field "$1" '.env[?(@.name=="PODINFO_UI_MESSAGE")].value'
}

# release DEPLOYMENT MESSAGE [IMAGE] [COMMAND_JSON]: change the pod template in ONE patch, so the operator sees one
# new revision (two patches would be two revisions and restart the analysis). The message makes every run a new
# revision, so the scenarios can be re-run on the same cluster.
release() {
  local deployment="$1" message="$2" image="${3:-}" command="${4:-}"
  local container="{\"name\":\"podinfod\",\"env\":[{\"name\":\"PODINFO_UI_MESSAGE\",\"value\":\"${message}\"}]"
  [[ -n "${image}" ]] && container+=",\"image\":\"${image}\""
  [[ -n "${command}" ]] && container+=",\"command\":${command}"
  container+="}"
  log "releasing ${deployment}: message=${message}${image:+ image=${image}}${command:+ command=${command}}"
  kubectl -n "${NAMESPACE}" patch deployment "${deployment}" --type=strategic \
    -p "{\"spec\":{\"template\":{\"spec\":{\"containers\":[${container}]}}}}"
}

# route_weight SERVICE DESTINATION: the weight of DESTINATION in the VirtualService's weighted route.
route_weight() {
  kubectl -n "${NAMESPACE}" get virtualservices.networking.istio.io "$1" \
    -o jsonpath="{.spec.http[?(@.name==\"weighted\")].route[?(@.destination.host==\"$2\")].weight}"
}

# httproute_weight ROUTE BACKEND [RULE]: the weight of the backendRef BACKEND in the HTTPRoute's rule RULE (default
# weighted, the primary/canary split; canary-match is the A/B rule). Gateway API provider only.
httproute_weight() {
  kubectl -n "${NAMESPACE}" get httproutes.gateway.networking.k8s.io "$1" \
    -o jsonpath="{.spec.rules[?(@.name==\"${3:-weighted}\")].backendRefs[?(@.name==\"$2\")].weight}"
}

# httproute_mirror ROUTE: the Service the HTTPRoute's weighted rule mirrors to (empty when it mirrors nothing).
httproute_mirror() {
  kubectl -n "${NAMESPACE}" get httproutes.gateway.networking.k8s.io "$1" \
    -o jsonpath='{.spec.rules[?(@.name=="weighted")].filters[?(@.type=="RequestMirror")].requestMirror.backendRef.name}'
}

# observe_route_until SECONDS KIND NAME PHASE...: poll every 2 s until the rollout KIND/NAME is in one of PHASE...,
# recording what its HTTPRoute NAME showed for the canary NAME-canary: every weight of the weighted rule
# (SEEN_WEIGHTS), every weight of the A/B rule (SEEN_MATCH) and whether it was mirrored to (SEEN_MIRROR).
# shellcheck disable=SC2034  # SEEN_MIRROR is read by the scripts that call it
observe_route_until() {
  local timeout="$1" kind="$2" name="$3"
  shift 3
  local deadline=$((SECONDS + timeout)) weight match
  SEEN_WEIGHTS=" "
  SEEN_MATCH=" "
  SEEN_MIRROR=no
  log "watching ${kind}/${name} and HTTPRoute ${name} until it is $* (up to ${timeout}s)"
  until phase_is "${kind}" "${name}" "$@"; do
    weight="$(httproute_weight "${name}" "${name}-canary" 2>/dev/null || true)"
    if [[ -n "${weight}" && "${SEEN_WEIGHTS}" != *" ${weight} "* ]]; then
      SEEN_WEIGHTS+="${weight} "
      log "canary weight ${weight}% (phase $(phase "${kind}" "${name}"))"
    fi
    match="$(httproute_weight "${name}" "${name}-canary" canary-match 2>/dev/null || true)"
    if [[ -n "${match}" && "${SEEN_MATCH}" != *" ${match} "* ]]; then
      SEEN_MATCH+="${match} "
      log "A/B rule sends ${match}% of matching requests to the canary (phase $(phase "${kind}" "${name}"))"
    fi
    [[ "$(httproute_mirror "${name}" 2>/dev/null || true)" == "${name}-canary" ]] && SEEN_MIRROR=yes
    if ((SECONDS >= deadline)); then
      fail "timed out after ${timeout}s waiting for ${kind}/${name} to be $* (it is '$(phase "${kind}" "${name}")')"
    fi
    sleep 2
  done
  pass "${kind}/${name} is $(phase "${kind}" "${name}"); canary weights seen:${SEEN_WEIGHTS}"
}

replicas() {
  kubectl -n "${NAMESPACE}" get deployment "$1" -o jsonpath='{.spec.replicas}'
}

replicas_are() {
  [[ "$(replicas "$1")" == "$2" ]]
}

# prom_query PROMQL: the first sample's value of an instant query, through the API server's service proxy (no
# port-forward, nothing exposed on the host). Empty when the result is empty.
prom_query() {
  local encoded
  encoded="$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1")"
  kubectl get --raw "/api/v1/namespaces/istio-system/services/prometheus:9090/proxy/api/v1/query?query=${encoded}" |
    python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}

# prom_positive PROMQL: succeeds when the query returns a value > 0.
prom_positive() {
  local value
  value="$(prom_query "$1")"
  [[ -n "${value}" ]] && python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)' "${value}"
}

# istio_requests WORKLOAD [CODES] [WINDOW]: PromQL for the requests Istio's sidecars reported for a workload of the
# demo namespace with a response code matching CODES over WINDOW (default: every code, 5m).
istio_requests() {
  local workload="$1" codes="${2:-.*}" window="${3:-5m}"
  printf 'sum(increase(istio_requests_total{reporter="destination",destination_workload_namespace="%s",destination_workload="%s",response_code=~"%s"}[%s]))' \
    "${NAMESPACE}" "${workload}" "${codes}" "${window}"
}

# collect_logs DIR: everything needed to understand a failed run, written to DIR.
collect_logs() {
  local dir="$1"
  mkdir -p "${dir}"
  log "collecting logs in ${dir}"
  kubectl get nodes -o wide >"${dir}/nodes.txt" 2>&1 || true
  kubectl get all,canaries.coalmine.dev,bluegreens.coalmine.dev,virtualservices.networking.istio.io,destinationrules.networking.istio.io \
    -A -o wide >"${dir}/objects.txt" 2>&1 || true
  kubectl -n "${NAMESPACE}" get canaries.coalmine.dev,bluegreens.coalmine.dev,virtualservices.networking.istio.io,deployments,services \
    -o yaml >"${dir}/demo-objects.yaml" 2>&1 || true
  kubectl -n "${NAMESPACE}" describe canaries.coalmine.dev,bluegreens.coalmine.dev,deployments,pods \
    >"${dir}/demo-describe.txt" 2>&1 || true
  kubectl get events -A --sort-by=.lastTimestamp >"${dir}/events.txt" 2>&1 || true
  kubectl -n "${COALMINE_NAMESPACE}" logs -l app.kubernetes.io/instance=coalmine --all-containers --prefix \
    --tail=-1 >"${dir}/coalmine.log" 2>&1 || true
  kubectl -n "${COALMINE_NAMESPACE}" logs -l app.kubernetes.io/instance=coalmine --all-containers --prefix \
    --previous --tail=-1 >"${dir}/coalmine-previous.log" 2>&1 || true
  local name
  for name in podinfo podinfo-bg; do
    kubectl coalmine explain "${name}" -n "${NAMESPACE}" >"${dir}/explain-${name}.txt" 2>&1 || true
  done
  kubectl -n istio-system logs deployment/istiod --tail=500 >"${dir}/istiod.log" 2>&1 || true
  kind export logs "${dir}/kind" --name "${CLUSTER_NAME}" >/dev/null 2>&1 || true
}
