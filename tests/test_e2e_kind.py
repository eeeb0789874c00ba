"""The e2e run on a real cluster (``e2e/kind/``): kind, Istio, Prometheus, the chart, and four rollout scenarios.

The run itself (``test_kind_e2e``, marker ``kind``) needs a Docker engine and kind. Where either is missing it is
skipped, and the skip reason says which one and why (the output of ``docker info``): it never passes without
having run. Everything else here is cheap and always runs, so a broken script or manifest is caught on machines
that cannot run the e2e: every script parses and is shellcheck-clean, every wait has a timeout, every manifest
parses and passes the Kubernetes schema or ``coalmine validate``, the scripts and manifests agree on the settings a
revert depends on, and the chart accepts the e2e values.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from controller.rollout.bluegreen_spec import parse_valid_bluegreen
from controller.rollout.validation import is_checked_document, parse_valid_canary, validate_document
from controller.routers import Routes
from controller.routers.gatewayapi_build import build_http_route
from controller.routers.istio import build_virtual_service

ROOT = Path(__file__).resolve().parents[1]
E2E = ROOT / "e2e" / "kind"
SCRIPTS = sorted(E2E.glob("*.sh"))
YAML_FILES = sorted(E2E.rglob("*.yaml"))
K8S_VERSION = "1.37.0"
SCENARIOS = ("promote", "rollback", "bluegreen", "manual-gate")
SETUP_STEPS = (
    "create-cluster",
    "install-istio",
    "install-prometheus",
    "build-and-load",
    "install-coalmine",
    "deploy-demo",
)
GATEWAYAPI = E2E / "manifests" / "gatewayapi"
GATEWAYAPI_SCENARIOS = ("promote", "rollback", "ab", "bluegreen")
GATEWAYAPI_SETUP_STEPS = (
    "create-cluster",
    "install-gateway-api",
    "install-prometheus",
    "build-and-load",
    "install-coalmine",
    "deploy-gatewayapi-demo",
)
# The upstream Gateway API CRDs (standard channel), unmodified: the schema the Gateway object must pass.
GATEWAY_API_REFERENCE = Path("/work/shared/reference/crds/gateway-api")

Obj = dict[str, Any]


def _documents(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _manifests() -> Iterator[tuple[Path, Obj]]:
    """The Kubernetes objects the scripts apply (``manifests/``; not the kind config or the chart values)."""
    for path in sorted((E2E / "manifests").glob("*.yaml")):
        for doc in _documents(path):
            yield path, doc


def _gatewayapi_manifests() -> Iterator[tuple[Path, Obj]]:
    """The objects of the Gateway API variant (``manifests/gatewayapi/``)."""
    for path in sorted(GATEWAYAPI.glob("*.yaml")):
        for doc in _documents(path):
            yield path, doc


def _script_setting(script: str, name: str) -> str:
    """The default of ``NAME="${NAME:-default}"`` (optionally ``export``ed) in a script."""
    text = (E2E / script).read_text()
    match = re.search(rf'^(?:export )?{name}="\$\{{{name}:-(.*)\}}"$', text, re.MULTILINE)
    assert match, f"{script} does not default {name}"
    return match.group(1)


def _lib_setting(name: str) -> str:
    """A setting of lib.sh: ``NAME='value'``, ``NAME="value"`` or ``NAME="${NAME:-default}"`` (the default)."""
    text = (E2E / "lib.sh").read_text()
    match = re.search(rf"^{name}=(['\"])(.*)\1$", text, re.MULTILINE)
    assert match, f"lib.sh does not set {name}"
    value = match.group(2)
    default = re.fullmatch(rf"\$\{{{name}:-(.*)\}}", value)
    return default.group(1) if default else value


def _logical_lines(script: Path) -> list[str]:
    """The script's lines with backslash continuations joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", script.read_text())
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


# -- the run on a real cluster ------------------------------------------------------------------------------------


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def kind_prerequisites_missing() -> str | None:
    """Why the kind e2e cannot run on this machine (None when it can): the reason a skip reports."""
    if shutil.which("docker") is None:
        docker_problem: str | None = "docker info: the docker command is not on PATH"
    else:
        try:
            probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
        except subprocess.TimeoutExpired:
            docker_problem = "docker info: no answer within 30s"
        else:
            docker_problem = (
                None if probe.returncode == 0 else f"docker info: {_last_line(probe.stderr or probe.stdout)}"
            )
    kind_missing = shutil.which("kind") is None
    if docker_problem and kind_missing:
        return (
            f"kind e2e needs a Docker engine and kind; this machine has neither ({docker_problem}; kind: not on PATH)"
        )
    if docker_problem:
        return f"kind e2e needs a Docker engine and kind; this machine has kind but no Docker engine ({docker_problem})"
    if kind_missing:
        return "kind e2e needs a Docker engine and kind; this machine has a Docker engine but kind is not on PATH"
    tools = [tool for tool in ("kubectl", "helm", "istioctl") if shutil.which(tool) is None]
    if tools:
        return f"kind e2e also needs {', '.join(tools)} on PATH (see e2e/kind/README.md)"
    return None


@pytest.mark.kind
@pytest.mark.timeout(3 * 60 * 60)
def test_kind_e2e(tmp_path: Path) -> None:
    """Cluster, Istio, Prometheus, image, chart, demo, then promote, rollback, manual gate and blue/green."""
    reason = kind_prerequisites_missing()
    if reason is not None:
        pytest.skip(reason)
    log = tmp_path / "run-all.log"
    env = {**os.environ, "E2E_LOG_DIR": str(tmp_path / "cluster-logs")}
    with log.open("w") as out:
        result = subprocess.run(
            ["bash", str(E2E / "run-all.sh")], stdout=out, stderr=subprocess.STDOUT, env=env, check=False
        )
    tail = "\n".join(log.read_text().splitlines()[-80:])
    assert result.returncode == 0, (
        f"e2e/kind/run-all.sh failed (full log {log}, cluster logs in {env['E2E_LOG_DIR']}):\n{tail}"
    )


@pytest.mark.kind
@pytest.mark.timeout(3 * 60 * 60)
def test_kind_e2e_gatewayapi(tmp_path: Path) -> None:
    """The Gateway API variant: Gateway API CRDs, Istio as their implementation, a Gateway, then promote, rollback,
    A/B and blue/green with every Canary and BlueGreen on an HTTPRoute."""
    reason = kind_prerequisites_missing()
    if reason is not None:
        pytest.skip(reason)
    log = tmp_path / "run-all-gatewayapi.log"
    env = {**os.environ, "E2E_LOG_DIR": str(tmp_path / "cluster-logs")}
    with log.open("w") as out:
        result = subprocess.run(
            ["bash", str(E2E / "run-all-gatewayapi.sh")], stdout=out, stderr=subprocess.STDOUT, env=env, check=False
        )
    tail = "\n".join(log.read_text().splitlines()[-80:])
    assert result.returncode == 0, (
        f"e2e/kind/run-all-gatewayapi.sh failed (full log {log}, cluster logs in {env['E2E_LOG_DIR']}):\n{tail}"
    )


def test_the_skip_reason_names_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    reason = kind_prerequisites_missing()
    assert reason is not None
    assert reason.startswith("kind e2e needs a Docker engine and kind; this machine has neither")
    assert "docker info: the docker command is not on PATH" in reason
    assert "kind: not on PATH" in reason


def test_the_skip_reason_quotes_docker_info(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A docker client without an engine: the reason carries what `docker info` said."""
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'Client: Docker Engine'\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    reason = kind_prerequisites_missing()
    assert reason is not None
    assert "this machine has neither (docker info: Cannot connect to the Docker daemon; kind: not on PATH)" in reason


# -- scripts ------------------------------------------------------------------------------------------------------


def test_there_is_a_script_for_every_step_and_scenario() -> None:
    names = {script.stem for script in SCRIPTS}
    expected = {*SETUP_STEPS, *(f"scenario-{name}" for name in SCENARIOS), "teardown", "run-all", "lib"}
    assert expected <= names, f"missing: {sorted(expected - names)}"


def test_run_all_runs_every_step_then_every_scenario() -> None:
    text = (E2E / "run-all.sh").read_text()
    steps = re.findall(r"^step ([\w-]+)$", text, re.MULTILINE)
    assert steps == list(SETUP_STEPS), "run-all.sh must run the setup steps in this order"
    default = re.search(r'^SCENARIOS="\$\{SCENARIOS:-(.*)\}"$', text, re.MULTILINE)
    assert default, "run-all.sh has no default SCENARIOS"
    assert set(default.group(1).split()) == set(SCENARIOS)
    for scenario in default.group(1).split():
        assert (E2E / f"scenario-{scenario}.sh").is_file()
    assert "trap on_exit EXIT" in text and "collect_logs" in text, "run-all.sh must collect logs on failure"


def test_there_is_a_script_for_every_gatewayapi_step_and_scenario() -> None:
    names = {script.stem for script in SCRIPTS}
    expected = {*GATEWAYAPI_SETUP_STEPS, *(f"scenario-gatewayapi-{name}" for name in (*GATEWAYAPI_SCENARIOS, "gamma"))}
    assert expected <= names, f"missing: {sorted(expected - names)}"


def test_run_all_gatewayapi_runs_every_step_then_every_scenario() -> None:
    text = (E2E / "run-all-gatewayapi.sh").read_text()
    steps = re.findall(r"^step ([\w-]+)$", text, re.MULTILINE)
    assert steps == list(GATEWAYAPI_SETUP_STEPS), "run-all-gatewayapi.sh must run the setup steps in this order"
    default = re.search(r'^SCENARIOS="\$\{SCENARIOS:-(.*)\}"$', text, re.MULTILINE)
    assert default, "run-all-gatewayapi.sh has no default SCENARIOS"
    assert set(default.group(1).split()) == set(GATEWAYAPI_SCENARIOS)
    assert 'step "scenario-gatewayapi-${scenario}"' in text
    assert "trap on_exit EXIT" in text and "collect_logs" in text, "run-all-gatewayapi.sh must collect logs on failure"
    assert "teardown.sh" in text and "KEEP_CLUSTER:-0" in text
    # Its own cluster and kubeconfig: a kept Istio e2e cluster is neither reused nor overwritten.
    assert _script_setting("run-all-gatewayapi.sh", "CLUSTER_NAME") != _lib_setting("CLUSTER_NAME")
    assert "coalmine-e2e-gatewayapi/" in _script_setting("run-all-gatewayapi.sh", "E2E_KUBECONFIG")
    assert text.index("export ISTIO_VERSION") < text.index('source "$(dirname'), "lib.sh must see the Istio version"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.lstrip("v").split("."))


def test_the_gatewayapi_run_pins_versions_that_work_together() -> None:
    """The Gateway API release is pinned; the Istio the run defaults to is one install-gateway-api.sh accepts for it
    (istiod before 1.27.9 fails at startup on v1.5 CRDs), and the release has named rules in its standard channel
    (v1.4+), which Coalmine's HTTPRoute relies on."""
    pinned = _script_setting("install-gateway-api.sh", "GATEWAY_API_VERSION")
    assert re.fullmatch(r"v\d+\.\d+\.\d+", pinned), f"not a pinned release: {pinned}"
    assert _version(pinned) >= (1, 4, 0)
    text = (E2E / "install-gateway-api.sh").read_text()
    minimum = re.search(r'^MIN_ISTIO_FOR_GATEWAY_API="([\d.]+)"$', text, re.MULTILINE)
    assert minimum, "install-gateway-api.sh names no minimum Istio"
    assert _version(_script_setting("run-all-gatewayapi.sh", "ISTIO_VERSION")) >= _version(minimum.group(1))
    assert "releases/download/${GATEWAY_API_VERSION}/standard-install.yaml" in text, "the standard channel"
    if GATEWAY_API_REFERENCE.is_dir():
        (crd,) = _documents(GATEWAY_API_REFERENCE / "httproutes.yaml")
        assert crd["metadata"]["annotations"]["gateway.networking.k8s.io/channel"] == "standard"
        served = {version["name"] for version in crd["spec"]["versions"] if version["served"]}
        assert "v1" in served, "Coalmine writes HTTPRoutes at gateway.networking.k8s.io/v1"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_script_parses(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_script_is_strict_and_executable(script: Path) -> None:
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert re.search(r"^set -euo pipefail$", text, re.MULTILINE), "every script stops at the first error"
    assert os.access(script, os.X_OK), f"chmod +x {script.name}"
    if script.name != "lib.sh":
        assert 'source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"' in text


def test_scripts_are_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian: apt-get install shellcheck)")
    result = subprocess.run(
        ["shellcheck", "--external-sources", "--source-path=SCRIPTDIR", *map(str, SCRIPTS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=E2E,
    )
    assert result.returncode == 0, result.stdout + result.stderr


_WAITS = re.compile(r"^\s*(kubectl\b.*\b(wait|rollout status)\b|helm\b.*--wait\b|kubectl coalmine (status|promote)\b)")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_every_wait_has_a_timeout(script: Path) -> None:
    """A wedged cluster must end the run with an error, never hang it."""
    for line in _logical_lines(script):
        if _WAITS.search(line):
            assert re.search(r"--timeout|--wait \d", line), f"{script.name}: no timeout: {line.strip()}"
        for helper in ("wait_until", "wait_for_phase", "observe_until", "observe_route_until"):
            call = re.match(rf"\s*{helper}\s+(\S+)(?:\s+(\S+))?(?:\s+(\S+))?", line)
            if call and not line.rstrip().endswith("() {"):
                seconds = call.group(3) if helper == "wait_for_phase" else call.group(1)
                assert seconds and seconds.isdigit(), f"{script.name}: {helper} without a timeout: {line.strip()}"


# -- manifests ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda path: str(path.relative_to(E2E)))
def test_yaml_parses_into_objects(path: Path) -> None:
    documents = _documents(path)
    assert documents, f"{path.name} is empty"
    for doc in documents:
        assert isinstance(doc, dict)
        if path.name.startswith("values-"):
            continue
        assert doc.get("apiVersion") and doc.get("kind"), f"{path.name}: a document without apiVersion/kind"


def test_kubernetes_objects_pass_the_api_schema() -> None:
    checked = 0
    for _path, doc in _manifests():
        if doc.get("apiVersion") in ("v1", "apps/v1"):
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            checked += 1
    assert checked >= 5, "namespace, podinfo, podinfo-bg and both load generators"


def test_rollout_manifests_pass_coalmine_validate() -> None:
    kinds: list[str] = []
    for path, doc in _manifests():
        if not is_checked_document(doc):
            continue
        report = validate_document(doc)
        assert report.valid, f"{path.name}: {report.kind}/{report.name}: {report.problems}"
        assert not report.warnings, f"{path.name}: {report.kind}/{report.name}: {report.warnings}"
        kinds.append(report.kind)
    assert sorted(kinds) == ["BlueGreen", "Canary", "Canary"]


def test_the_manual_gate_canary_waits_for_a_person() -> None:
    (canary,) = _documents(E2E / "manifests" / "canary-manual-gate.yaml")
    assert {} in [step.get("pause") for step in canary["spec"]["analysis"]["steps"]]


def test_manifests_and_scripts_agree_on_the_demo() -> None:
    """A revert is only a revert if the script restores exactly the command in the manifest; the namespace, the
    service the load generator calls and the Prometheus address must match too."""
    namespace = _lib_setting("NAMESPACE")
    command = yaml.safe_load(_lib_setting("PODINFO_COMMAND"))
    faulty = yaml.safe_load(_lib_setting("PODINFO_FAULTY_COMMAND"))
    assert faulty == [*command, "--random-error=true"]
    apps = {doc["metadata"]["name"]: doc for _, doc in _manifests() if doc["kind"] == "Deployment"}
    for name in ("podinfo", "podinfo-bg"):
        (container,) = apps[name]["spec"]["template"]["spec"]["containers"]
        assert container["name"] == "podinfod", "release() in lib.sh patches the container podinfod"
        assert container["command"] == command
        assert {"name": "PODINFO_UI_MESSAGE", "value": "initial"} in container["env"]
    for loadgen, target in (("loadgen", "podinfo"), ("loadgen-bg", "podinfo-bg")):
        (container,) = apps[loadgen]["spec"]["template"]["spec"]["containers"]
        assert container["args"][-1] == f"http://{target}.{namespace}:9898/"
    for path, doc in _manifests():
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == namespace
            assert doc["metadata"]["labels"]["istio-injection"] == "enabled"
        else:
            assert doc["metadata"]["namespace"] == namespace, f"{path.name}: {doc['kind']}"
    assert _lib_setting("PROMETHEUS_URL") == "http://prometheus.istio-system:9090"


def test_gatewayapi_kubernetes_objects_pass_the_api_schema() -> None:
    checked = 0
    for _path, doc in _gatewayapi_manifests():
        if doc.get("apiVersion") in ("v1", "apps/v1"):
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            checked += 1
    assert checked >= 5, "istio-ingress, podinfo-bg and the three load generators"


def test_the_gateway_passes_the_gateway_api_schema() -> None:
    if not GATEWAY_API_REFERENCE.is_dir():
        pytest.skip(f"needs the reference Gateway API CRDs ({GATEWAY_API_REFERENCE})")
    (crd,) = _documents(GATEWAY_API_REFERENCE / "gateways.yaml")
    (schema,) = [version["schema"]["openAPIV3Schema"] for version in crd["spec"]["versions"] if version["name"] == "v1"]
    (gateway,) = [doc for _, doc in _gatewayapi_manifests() if doc["kind"] == "Gateway"]
    assert gateway["apiVersion"] == "gateway.networking.k8s.io/v1"
    errors = [error.message for error in jsonschema.Draft4Validator(schema).iter_errors(gateway)]
    assert not errors, errors
    bad = {**gateway, "spec": {**gateway["spec"], "listeners": [{"name": "http", "port": 80}]}}
    assert list(jsonschema.Draft4Validator(schema).iter_errors(bad)), "the schema check must be able to fail"
    assert gateway["spec"]["gatewayClassName"] == "istio"
    assert gateway["metadata"]["annotations"]["networking.istio.io/service-type"] == "ClusterIP", (
        "kind has no load balancer: a LoadBalancer Gateway is never Programmed"
    )


def test_gatewayapi_rollouts_pass_coalmine_validate() -> None:
    kinds: list[str] = []
    for path, doc in _gatewayapi_manifests():
        if not is_checked_document(doc):
            continue
        report = validate_document(doc)
        assert report.valid, f"{path.name}: {report.kind}/{report.name}: {report.problems}"
        assert not report.warnings, f"{path.name}: {report.kind}/{report.name}: {report.warnings}"
        assert doc["spec"]["provider"] == "gatewayapi:v1", f"{path.name}: the chart's default provider is istio"
        assert doc["spec"]["analysis"]["querySet"] == "istio", f"{path.name}: the pods run Istio sidecars"
        kinds.append(report.kind)
    assert sorted(kinds) == ["BlueGreen", "Canary", "Canary", "Canary"], "canary, canary-ab, canary-gamma, bluegreen"


def test_gatewayapi_manifests_and_scripts_agree_on_the_demo() -> None:
    """The routes attach to the Gateway the scripts install, the load generators call it for the hosts the routes
    serve (the A/B insiders with the header the A/B Canary matches), and the blue/green app is the Istio one."""
    namespace = _lib_setting("NAMESPACE")
    objects = {(doc["kind"], doc["metadata"]["name"]): (path, doc) for path, doc in _gatewayapi_manifests()}
    _, gateway = objects[("Gateway", "gateway")]
    gateway_ref = {"name": gateway["metadata"]["name"], "namespace": gateway["metadata"]["namespace"]}
    gateway_url = f"http://{gateway['metadata']['name']}-istio.{gateway['metadata']['namespace']}/"
    rollouts = {path.name: doc for path, doc in _gatewayapi_manifests() if doc["kind"] in ("Canary", "BlueGreen")}
    for name in ("canary.yaml", "canary-ab.yaml", "bluegreen.yaml"):
        assert rollouts[name]["spec"]["service"]["gatewayRefs"] == [gateway_ref], name
    assert "gatewayRefs" not in rollouts["canary-gamma.yaml"]["spec"]["service"], "GAMMA: the Service is the parent"

    def args(name: str) -> list[str]:
        (container,) = objects[("Deployment", name)][1]["spec"]["template"]["spec"]["containers"]
        return list(container["args"])

    for loadgen, rollout in (
        ("loadgen-gw", "canary.yaml"),
        ("loadgen-ab", "canary-ab.yaml"),
        ("loadgen-bg-gw", "bluegreen.yaml"),
    ):
        assert args(loadgen)[-1] == gateway_url, loadgen
        (host,) = rollouts[rollout]["spec"]["service"]["hosts"]
        assert f"Host: {host}" in args(loadgen), f"{loadgen} must ask for {host}"
    ((header, condition),) = rollouts["canary-ab.yaml"]["spec"]["analysis"]["match"][0]["headers"].items()
    assert (
        f"X-Canary: {condition['exact']}".lower() == next(a for a in args("loadgen-ab") if a.startswith("X-")).lower()
    )
    assert header == "x-canary"
    istio_bg = {doc["metadata"]["name"]: doc for _, doc in _manifests() if doc["kind"] == "Deployment"}["podinfo-bg"]
    assert objects[("Deployment", "podinfo-bg")][1] == istio_bg, (
        "the blue/green app must be the same as bluegreen.yaml's"
    )
    for path, doc in _gatewayapi_manifests():
        if doc["kind"] not in ("Namespace", "Gateway"):
            assert doc["metadata"]["namespace"] == namespace, f"{path.name}: {doc['kind']}"


# -- the helpers of lib.sh, run offline ----------------------------------------------------------------------------

# kubectl stand-in for lib.sh: `get … -o X` prints X of $OBJECT_FILE, `patch … -p P` applies P to $OBJECT_FILE, both
# with the real kubectl in --local mode (no cluster), so the helpers' jsonpaths and patches are checked as written.
_OFFLINE_KUBECTL = """
kubectl() {
  local verb="" patch="" output=""
  while (($#)); do
    case "$1" in
      get | patch) verb="$1"; shift ;;
      -p) patch="$2"; shift 2 ;;
      -o) output="$2"; shift 2 ;;
      *) shift ;;
    esac
  done
  case "${verb}" in
    get) command kubectl label --local -f "${OBJECT_FILE}" e2e=offline -o "${output}" ;;
    patch) command kubectl patch --local -f "${OBJECT_FILE}" --type=strategic -p "${patch}" -o yaml ;;
  esac
}
"""


def _run_lib(snippet: str, object_file: Path, tmp_path: Path) -> str:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    script = f'source "{E2E / "lib.sh"}"\n{_OFFLINE_KUBECTL}\n{snippet}\n'
    env = {**os.environ, "OBJECT_FILE": str(object_file), "E2E_KUBECONFIG": str(tmp_path / "no-kubeconfig")}
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, check=False, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _template(deployment: Obj) -> Obj:
    template: Obj = deployment["spec"]["template"]
    return template


def test_a_release_is_one_patch_and_reverting_restores_the_template(tmp_path: Path) -> None:
    """The rollback scenario expects `Failed → Succeeded` when it reverts: only true if the revert gives back
    exactly the pod template the primary runs."""
    manifest = E2E / "manifests" / "podinfo.yaml"
    (original,) = _documents(manifest)
    faulty_file = tmp_path / "faulty.yaml"
    faulty_file.write_text(_run_lib('release podinfo faulty-1 "" "${PODINFO_FAULTY_COMMAND}"', manifest, tmp_path))
    (faulty,) = _documents(faulty_file)
    (container,) = _template(faulty)["spec"]["containers"]
    assert container["command"][-1] == "--random-error=true"
    assert container["env"] == [{"name": "PODINFO_UI_MESSAGE", "value": "faulty-1"}]
    assert container["image"] == original["spec"]["template"]["spec"]["containers"][0]["image"]

    image = original["spec"]["template"]["spec"]["containers"][0]["image"]
    reverted_file = tmp_path / "reverted.yaml"
    reverted_file.write_text(
        _run_lib(f'release podinfo initial "{image}" "${{PODINFO_COMMAND}}"', faulty_file, tmp_path)
    )
    (reverted,) = _documents(reverted_file)
    assert _template(reverted) == _template(original)


def test_the_helpers_read_what_the_manifests_and_the_router_write(tmp_path: Path) -> None:
    manifest = E2E / "manifests" / "podinfo.yaml"
    assert _run_lib("release_message podinfo", manifest, tmp_path) == "initial"
    assert _run_lib("container_field podinfo .image", manifest, tmp_path) == "ghcr.io/stefanprodan/podinfo:6.7.0"

    (canary,) = _documents(E2E / "manifests" / "canary.yaml")
    spec = parse_valid_canary(canary)
    vs = build_virtual_service(spec, "podinfo", "test", Routes(80, 20, mirror=100), canary_uid="uid")
    vs_file = tmp_path / "vs.yaml"
    vs_file.write_text(yaml.safe_dump(vs))
    weights = _run_lib(
        'echo "$(route_weight podinfo podinfo-primary)/$(route_weight podinfo podinfo-canary)"', vs_file, tmp_path
    )
    assert weights.strip() == "80/20"


def _http_route_file(tmp_path: Path, manifest: str, routes: Routes) -> Path:
    """The HTTPRoute Coalmine builds for the e2e rollout in ``manifest`` at ``routes``, as the API server stores it."""
    (doc,) = [d for d in _documents(GATEWAYAPI / manifest) if d["kind"] in ("Canary", "BlueGreen")]
    if doc["kind"] == "BlueGreen":
        spec = parse_valid_bluegreen(doc).canary
        route = build_http_route(
            spec, doc["metadata"]["name"], "test", routes, canary_uid="uid", owner_kind="BlueGreen"
        )
    else:
        route = build_http_route(parse_valid_canary(doc), doc["metadata"]["name"], "test", routes, canary_uid="uid")
    path = tmp_path / f"httproute-{manifest}"
    path.write_text(yaml.safe_dump(route))
    return path


def test_the_route_helpers_read_what_the_gatewayapi_router_writes(tmp_path: Path) -> None:
    """The jsonpaths the Gateway API scenarios assert with, run against the HTTPRoute the router builds."""
    route = _http_route_file(tmp_path, "canary.yaml", Routes(80, 20))
    weights = _run_lib(
        'echo "$(httproute_weight podinfo podinfo-primary)/$(httproute_weight podinfo podinfo-canary)"', route, tmp_path
    )
    assert weights.strip() == "80/20"
    assert _run_lib("httproute_mirror podinfo", route, tmp_path).strip() == ""
    parent = _run_lib(
        "kubectl get httproute podinfo -o jsonpath='{.spec.parentRefs[0].name}/{.spec.parentRefs[0].namespace}'",
        route,
        tmp_path,
    )
    assert parent == "gateway/istio-ingress", "deploy-gatewayapi-demo.sh waits for the status of this parent"


def test_the_ab_helpers_see_the_match_rule_and_the_untouched_split(tmp_path: Path) -> None:
    route = _http_route_file(tmp_path, "canary-ab.yaml", Routes(100, 0, match_active=True))
    seen = _run_lib(
        'echo "$(httproute_weight podinfo podinfo-canary canary-match)/$(httproute_weight podinfo podinfo-canary)"',
        route,
        tmp_path,
    )
    assert seen.strip() == "100/0", "insiders on the canary, the weighted split untouched"
    after = _http_route_file(tmp_path, "canary-ab.yaml", Routes(100, 0, match_active=False))
    assert _run_lib("httproute_weight podinfo podinfo-canary canary-match", after, tmp_path) == "0"


def test_the_mirror_helper_sees_the_bluegreen_preview(tmp_path: Path) -> None:
    previewing = _http_route_file(tmp_path, "bluegreen.yaml", Routes(100, 0, mirror=100))
    assert _run_lib("httproute_mirror podinfo-bg", previewing, tmp_path) == "podinfo-bg-canary"
    assert _run_lib("httproute_weight podinfo-bg podinfo-bg-canary", previewing, tmp_path) == "0"
    switched = _http_route_file(tmp_path, "bluegreen.yaml", Routes(0, 100))
    assert _run_lib("httproute_mirror podinfo-bg", switched, tmp_path) == ""
    assert _run_lib("httproute_weight podinfo-bg podinfo-bg-canary", switched, tmp_path) == "100"


def test_the_gamma_route_attaches_to_the_service(tmp_path: Path) -> None:
    route = _http_route_file(tmp_path, "canary-gamma.yaml", Routes(60, 40))
    parent = _run_lib(
        "kubectl get httproute podinfo -o jsonpath='{.spec.parentRefs[0].kind}/{.spec.parentRefs[0].name}'",
        route,
        tmp_path,
    )
    assert parent == "Service/podinfo", "scenario-gatewayapi-gamma.sh waits for exactly this"
    assert _run_lib("httproute_weight podinfo podinfo-canary", route, tmp_path) == "40"


# -- the chart with the e2e values --------------------------------------------------------------------------------


def test_the_chart_accepts_the_e2e_values() -> None:
    script = " ".join(_logical_lines(E2E / "install-coalmine.sh"))
    set_keys = re.findall(r"--set ([\w.]+)=", script)
    image = _lib_setting("COALMINE_IMAGE")
    overrides = {
        "image.repository": image.rsplit(":", 1)[0],
        "image.tag": image.rsplit(":", 1)[1],
        "operator.metricsServer": _lib_setting("PROMETHEUS_URL"),
    }
    assert sorted(set_keys) == sorted(overrides), "install-coalmine.sh's --set keys changed: update this test"
    values: Obj = yaml.safe_load((E2E / "values-e2e.yaml").read_text())
    for key, value in overrides.items():
        section, field = key.split(".")
        values.setdefault(section, {})[field] = value
    chart = helm.Chart.load(ROOT / "charts" / "coalmine")
    try:
        chart.validate_schema(chart.merge_values(values))
        manifests = chart.render(values, name="coalmine", namespace="coalmine-system", is_install=True)
    finally:
        chart.close()
    objects = [doc for path, text in manifests.items() if path.endswith(".yaml") for doc in yaml.safe_load_all(text)]
    (deployment,) = [obj for obj in objects if obj and obj["kind"] == "Deployment"]
    assert deployment["metadata"]["name"] == "coalmine", "the scripts wait for deployment/coalmine"
    (operator,) = deployment["spec"]["template"]["spec"]["containers"]
    assert operator["image"] == image
    assert operator["imagePullPolicy"] == "Never", "the image only exists on the kind node"
    assert f"--metrics-server={_lib_setting('PROMETHEUS_URL')}" in operator["args"]
