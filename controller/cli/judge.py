"""``coalmine judge``: replay a past window of real Prometheus data through the engine and judge (backtesting)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from controller.backtest import (
    BacktestError,
    CanaryIdentity,
    PrometheusLooks,
    granted_templates,
    parse_instant,
    plan_looks,
    templates_from_documents,
)
from controller.cli.manifest_yaml import load_all
from controller.cli.manifests import load_canary
from controller.cli.timeline import print_timeline
from controller.providers import ProviderConfig, ProviderError, create_provider
from controller.rollout.durations import DurationError, format_duration, parse_duration
from controller.rollout.status import format_time
from controller.simulation import DriveOptions, drive, tick_seconds, timeline_json


def _bad(flag: str, message: str) -> typer.BadParameter:
    return typer.BadParameter(message, param_hint=f"'{flag}'")


def _instant(text: str, flag: str, now: float) -> float:
    try:
        return parse_instant(text, now)
    except BacktestError as error:
        raise _bad(flag, str(error)) from error


def _duration(text: str, flag: str) -> float:
    try:
        return parse_duration(text)
    except DurationError as error:
        raise _bad(flag, str(error)) from error


def _documents(path: str, flag: str) -> list[dict[str, Any]]:
    try:
        text = Path(path).read_text()
        return [doc for doc in load_all(text) if isinstance(doc, dict)]
    except OSError as error:
        raise _bad(flag, f"{path}: cannot read: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise _bad(flag, f"{path}: invalid YAML: {error}") from error


def _token(path: str | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        token = Path(path).read_text().strip()
    except OSError as error:
        raise _bad("--bearer-token-file", f"{path}: cannot read: {error.strerror}") from error
    if not token:
        raise _bad("--bearer-token-file", f"{path} is empty")
    return {"token": token}


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def judge_command(
    file: Annotated[str, typer.Option("-f", "--file", help="Canary manifest (YAML; '-' for stdin).")],
    prometheus: Annotated[str, typer.Option("--prometheus", help="Prometheus address, e.g. http://prom:9090.")],
    start: Annotated[str, typer.Option(help="Release time: RFC3339, unix seconds, -1h or now.")],
    end: Annotated[str, typer.Option(help="End of the replayed window (same formats).")] = "now",
    step: Annotated[
        str | None, typer.Option(help="Clock tick of the replay (default: the analysis and metric intervals' GCD).")
    ] = None,
    templates: Annotated[
        list[str] | None, typer.Option("--templates", help="YAML file with MetricTemplates (repeatable).")
    ] = None,
    bearer_token_file: Annotated[str | None, typer.Option(help="File holding a bearer token for Prometheus.")] = None,
    insecure_skip_verify: Annotated[bool, typer.Option(help="Skip TLS certificate verification.")] = False,
    timeout: Annotated[str, typer.Option(help="Timeout of each query.")] = "10s",
    name: Annotated[str | None, typer.Option("--name", help="Which Canary, if the file holds several.")] = None,
    manual_approval_delay: Annotated[
        str, typer.Option(help="How long after a manual pause starts a person promotes it.")
    ] = "0s",
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision and the timeline as JSON.")] = False,
    trusted_template_namespaces: Annotated[
        str,
        typer.Option(
            help="Comma-separated namespaces the operator trusts (its own and its --trusted-template-namespaces): "
            'their MetricTemplates may read other namespaces with coalmine.dev/reads-other-namespaces: "true".',
        ),
    ] = "",
    namespace_labels: Annotated[
        str, typer.Option(help="Comma-separated extra namespace labels, as the operator's --namespace-labels.")
    ] = "",
) -> None:
    """Replay a past window of real Prometheus data through the rollout engine and judge.

    The release is taken to happen at --start; each look reads the same queries, over the same windows, the
    operator would have run then. Prints what Coalmine would have decided, and when, with each look's evidence.
    """
    now = float(int(time.time()))  # whole seconds: relative times then print without a fraction
    start_s = _instant(start, "--start", now)
    end_s = _instant(end, "--end", now)
    if end_s <= start_s:
        raise _bad("--end", f"must be after --start ({format_time(end_s)} ≤ {format_time(start_s)})")
    step_s = None if step is None else _duration(step, "--step")
    if step_s is not None and step_s <= 0:
        raise _bad("--step", "must be positive")
    document, spec = load_canary(file, name)
    identity = CanaryIdentity.of(document, spec)
    documents = [] if file == "-" else _documents(file, "--file")
    for path in templates or ():
        documents += _documents(path, "--templates")
    try:
        plan = plan_looks(
            spec,
            identity,
            templates_from_documents(documents, identity.namespace),
            trusted=frozenset(_comma_list(trusted_template_namespaces)),
            granted=granted_templates(documents, identity.namespace),
            namespace_labels=_comma_list(namespace_labels),
        )
    except BacktestError as error:
        raise _fail(str(error)) from error
    try:
        provider = create_provider(
            ProviderConfig(
                address=prometheus,
                credentials=_token(bearer_token_file),
                insecure_skip_verify=insecure_skip_verify,
                timeout_s=_duration(timeout, "--timeout"),
            )
        )
    except ProviderError as error:
        raise _bad("--prometheus", str(error)) from error
    if not provider.is_online():
        raise _fail(f"Prometheus at {prometheus} does not answer (or refuses the credentials)")
    options = DriveOptions(
        start=start_s,
        max_duration_s=end_s - start_s,
        tick_s=step_s if step_s is not None else tick_seconds(spec),
        approval_delay_s=_duration(manual_approval_delay, "--manual-approval-delay"),
        record=True,
    )
    result = drive(spec, PrometheusLooks(provider, identity, plan), options)
    decided_at = None if result.decision_seconds is None else start_s + result.decision_seconds
    if as_json:
        report = {
            "canary": f"{identity.namespace}/{identity.name}",
            "prometheus": prometheus,
            "start": format_time(start_s),
            "end": format_time(end_s),
            "stepSeconds": options.tick_s,
            "result": result.result,
            "decisionSeconds": result.decision_seconds,
            "decisionTime": None if decided_at is None else format_time(decided_at),
            "reason": result.reason,
            "maxCanaryWeight": result.max_canary_weight,
            "timeline": timeline_json(result, start_s),
        }
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    typer.echo(
        f"Replaying {identity.namespace}/{identity.name} from {format_time(start_s)} to {format_time(end_s)} "
        f"({format_duration(end_s - start_s)}) against {prometheus}"
    )
    print_timeline(result, clock=lambda seconds: format_time(start_s + seconds))
    if decided_at is not None:
        typer.echo(f"Decided at: {format_time(decided_at)}")
