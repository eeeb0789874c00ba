"""``coalmine run``: start the operator (kopf underneath) against the cluster in ``KUBECONFIG`` or in-cluster."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import kopf
import typer

from controller.logredact import remember_secret
from controller.notify.config import ProviderConfig, ProviderConfigError
from controller.operator.context import OperatorConfig, parse_selector
from controller.operator.leader import LEASE_DURATION_S, RENEW_DEADLINE_S, RETRY_PERIOD_S, ElectionConfig
from controller.operator.runtime import (
    NoCluster,
    build_context,
    build_registry,
    check_cluster,
    configure_logging,
    configure_settings,
    kubernetes_configuration,
    limit_malloc_arenas,
    tune_garbage_collector,
)
from controller.operator.sharding import parse_shard
from controller.rollout.provider_rules import Provider


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


def run_command(
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", "-n", help="Watch this namespace (repeatable).")
    ] = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Watch every namespace.")] = False,
    selector: Annotated[
        list[str] | None,
        typer.Option(
            "--selector",
            "-l",
            help="Only Canaries/BlueGreens with this label: KEY=VALUE, or KEY for any value (repeatable; all must "
            "match). Shards a cluster between operators.",
        ),
    ] = None,
    shard: Annotated[
        str,
        typer.Option(
            "--shard",
            metavar="I/N",
            help="Only Canaries/BlueGreens whose namespace/name hashes (SHA-256) to shard I of N (0-based): N "
            "operators with --shard 0/N … N-1/N share a cluster, each with its own --lease-name (or --peering name).",
        ),
    ] = "0/1",
    metrics_server: Annotated[
        str, typer.Option(help="Default Prometheus address (a Canary's spec.metricsServer overrides it).")
    ] = "http://prometheus.istio-system:9090",
    metrics_port: Annotated[int, typer.Option(help="Port of the operator's own /metrics (0: off).")] = 8080,
    liveness_port: Annotated[int, typer.Option(help="Port of the liveness probe /healthz (0: off).")] = 8081,
    log_format: Annotated[
        LogFormat, typer.Option(help="json (with namespace/name on every line) or text.")
    ] = LogFormat.JSON,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    tick: Annotated[float, typer.Option(min=0.1, help="Seconds between looks at each Canary.")] = 2.0,
    default_provider: Annotated[
        Provider,
        typer.Option(help="The router of Canaries/BlueGreens without spec.provider (Flagger's -mesh-provider)."),
    ] = Provider.ISTIO,
    peering: Annotated[str | None, typer.Option(help="kopf peering name for HA (one active replica).")] = None,
    priority: Annotated[int | None, typer.Option(help="This replica's peering priority (default: random).")] = None,
    leader_elect: Annotated[
        bool,
        typer.Option(
            "--leader-elect",
            help="HA with fencing: only the holder of a coordination.k8s.io Lease acts, and it stops acting when it "
            "cannot renew the Lease within the renew deadline (instead of --peering).",
        ),
    ] = False,
    lease_name: Annotated[str, typer.Option(help="The Lease of --leader-elect.")] = "coalmine",
    lease_namespace: Annotated[
        str | None,
        typer.Option(help="The Lease's namespace (default: POD_NAMESPACE, the pod's own namespace, or default)."),
    ] = None,
    identity: Annotated[
        str | None,
        typer.Option(help="This replica's holderIdentity (default: POD_NAME, else host name + a random id)."),
    ] = None,
    lease_duration: Annotated[
        float, typer.Option(help="Seconds a standby waits, by its own clock, after the Lease last changed.")
    ] = LEASE_DURATION_S,
    renew_deadline: Annotated[
        float, typer.Option(help="Seconds without a successful renewal after which the leader stops acting.")
    ] = RENEW_DEADLINE_S,
    retry_period: Annotated[float, typer.Option(help="Seconds between tries to acquire or renew.")] = RETRY_PERIOD_S,
    hook_secret_file: Annotated[
        Path | None, typer.Option(help="File with the HMAC key that signs webhook requests.")
    ] = None,
    default_alert_url: Annotated[str | None, typer.Option(help="Notify here for Canaries without alerts.")] = None,
    default_alert_type: Annotated[
        str, typer.Option(help="slack, msteams, discord, gchat, rocket or webhook.")
    ] = "slack",
    trusted_template_namespaces: Annotated[
        str,
        typer.Option(
            help="Comma-separated namespaces whose MetricTemplates may read other namespaces' series with the "
            'annotation coalmine.dev/reads-other-namespaces: "true" (besides the operator\'s own namespace).',
        ),
    ] = "",
    namespace_labels: Annotated[
        str,
        typer.Option(
            help="Comma-separated labels that also hold a namespace, besides namespace, "
            "destination_workload_namespace, source_workload_namespace, kubernetes_namespace and "
            "exported_namespace (a query's selectors must match the Canary's namespace on one of them).",
        ),
    ] = "",
) -> None:
    """Run the Coalmine operator until SIGTERM/SIGINT (then it stops cleanly)."""
    if not all_namespaces and not namespace:
        raise typer.BadParameter("give --namespace NS (repeatable) or --all-namespaces", param_hint="--namespace")
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        raise typer.BadParameter(f"{log_level!r}: use debug, info, warning or error", param_hint="--log-level")
    configure_logging(level, json_format=log_format is LogFormat.JSON)
    try:
        labels = parse_selector(selector or ())
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--selector") from error
    try:
        shard_spec = parse_shard(shard)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--shard") from error
    try:
        default_alert = ProviderConfig.from_flags(default_alert_url, type=default_alert_type)
    except ProviderConfigError as error:
        raise typer.BadParameter(str(error), param_hint="--default-alert-url") from error
    if leader_elect and peering:
        raise typer.BadParameter("--leader-elect replaces --peering: give one of them", param_hint="--peering")
    try:
        election = (
            ElectionConfig(
                name=lease_name,
                namespace=lease_namespace or _own_namespace(),
                identity=identity or _own_identity(),
                lease_duration_s=lease_duration,
                renew_deadline_s=renew_deadline,
                retry_period_s=retry_period,
            )
            if leader_elect
            else None
        )
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--leader-elect") from error
    hook_secret = hook_secret_file.read_bytes().strip() if hook_secret_file else None
    remember_secret(hook_secret, default_alert_url)
    config = OperatorConfig(
        tick_seconds=tick,
        default_provider=default_provider.value,
        metrics_server=metrics_server,
        hook_secret=hook_secret,
        default_alert=default_alert,
        namespaces=tuple(namespace or ()),
        selector=labels,
        shard=shard_spec,
        instance=os.environ.get("POD_ID", os.environ.get("HOSTNAME", "coalmine")),
        trusted_template_namespaces=tuple(
            dict.fromkeys((*_pod_namespace(), *_comma_list(trusted_template_namespaces)))
        ),
        namespace_labels=_comma_list(namespace_labels),
    )
    limit_malloc_arenas()
    try:
        configuration = kubernetes_configuration()
        check_cluster(configuration)
    except NoCluster as error:
        typer.echo(f"coalmine run: {error}", err=True)
        raise typer.Exit(1) from None
    ctx = build_context(config, configuration, election)
    tune_garbage_collector()
    endpoint = ctx.metrics.serve(metrics_port) if metrics_port else None
    settings = kopf.OperatorSettings()
    configure_settings(settings, peering=peering, priority=priority, finalizer=config.shard.finalizer)
    try:
        kopf.run(
            registry=build_registry(config),
            settings=settings,
            memo=kopf.Memo(ctx=ctx),
            clusterwide=all_namespaces,
            namespaces=() if all_namespaces else tuple(namespace or ()),
            standalone=peering is None,
            peering_name=peering,
            priority=settings.peering.priority,
            liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None,
        )
    finally:
        if endpoint is not None:
            endpoint.close()


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _own_namespace() -> str:
    """The pod's namespace (the downward API's POD_NAMESPACE, or the service account's), else ``default``."""
    return next(iter(_pod_namespace()), "default")


def _pod_namespace() -> tuple[str, ...]:
    """The pod's namespace when it is known (never guessed: it is trusted with MetricTemplates' grants)."""
    found = os.environ.get("POD_NAMESPACE")
    if not found:
        try:
            found = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        except OSError:
            found = ""
    return (found,) if found else ()


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _own_identity() -> str:
    """POD_NAME (unique among the pods), else the host name with a random suffix: two processes on one machine
    must never share an identity, or both would think they hold the Lease (as client-go advises)."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{uuid.uuid4().hex[:12]}"
