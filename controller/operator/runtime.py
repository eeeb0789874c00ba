"""Assemble a running operator: kopf settings, the handler registry, and the per-process context.

Shared by ``coalmine run`` and the integration tests, so tests exercise exactly what production runs.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import gc
import logging
import os
import random
from typing import Any

import kopf
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from controller.handlers import bluegreen, canary, common, watched
from controller.kube.client import KubeClient
from controller.kube.watched import WATCHED_RESOURCES, WatchedKubeApi
from controller.logredact import install as install_redaction
from controller.operator.context import OperatorConfig, OperatorContext
from controller.operator.leader import ElectionConfig, LeaseElection
from controller.operator.sharding import FINALIZER

SHUTDOWN_GRACE_S = 15.0


class NoChangeTracking(kopf.DiffBaseStorage):
    """kopf's diff base for objects whose changes no handler reacts to: one constant, empty essence.

    kopf builds an "essence" of the object (a deep copy minus status and system metadata) on every watch event to
    detect creations, updates and resumes for ``@kopf.on.create/update/resume`` handlers. Coalmine has none — each
    tick compares what it needs itself — only a deletion handler, which kopf triggers from ``deletionTimestamp``
    whatever the diff. With every tick writing its status, building that essence was a few percent of the
    operator's CPU at a thousand Canaries, for nothing; so there is nothing to build, store or compare.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return {}

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return {}

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


# Libraries that log every request at INFO, URL included (httpx: "HTTP Request: POST https://hooks.slack.com/…"):
# one line per Prometheus query or notification is noise at scale, and the URL may be a credential.
_CHATTY_LOGGERS = ("httpx", "httpcore", "kubernetes.client.rest", "urllib3")


def configure_logging(level: int, *, json_format: bool) -> None:
    """Log at ``level`` through kopf's formatter, with every record redacted (:mod:`controller.logredact`).

    kopf's own ``verbose`` switch means DEBUG, so ``--log-level info`` must not set it: only ``debug`` turns on
    kopf's debug output (and the per-request lines of the HTTP libraries).
    """
    kopf.configure(
        debug=level <= logging.DEBUG,
        verbose=False,
        quiet=level >= logging.WARNING,
        log_format=kopf.LogFormat.JSON if json_format else kopf.LogFormat.FULL,
        log_refkey="object",
    )
    logging.getLogger().setLevel(level)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level <= logging.DEBUG else max(level, logging.WARNING))
    install_redaction()


GC_THRESHOLDS = (10_000, 50, 100)
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt() parameter number


def limit_malloc_arenas() -> None:
    """Let glibc's allocator keep at most two arenas; call once, before threads start. A no-op elsewhere.

    glibc gives threads that allocate at the same time arenas of their own, up to eight per core, and memory freed
    in one arena is not reused by another. The operator's watch threads parse every watch event while the event
    loop parses the answers of its requests, so the heap spread over many arenas, each holding freed memory: at
    2,000 Canaries the resident memory was about 40 MB higher than with two (``bench/scale.py``). Setting
    ``MALLOC_ARENA_MAX`` in the environment does the same.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return  # not glibc: nothing to tune
    mallopt(_M_ARENA_MAX, MALLOC_ARENAS)


def tune_garbage_collector() -> None:
    """Keep Python's cyclic garbage collector from stalling a busy operator; call once, after the imports.

    With thousands of Canaries the collector's full passes walked the whole heap — half a second each, several a
    minute at 2,000 Canaries, every tick in flight waiting — and its young passes ran hundreds of times a minute.
    What is imported at startup never becomes garbage, so it is moved out of the collector's sight (``gc.freeze``);
    and the thresholds let far more allocations pass between collections: almost everything a tick allocates is
    freed by reference counting the moment the tick is done, so the passes mostly found nothing. Full passes still
    run, about every 50 million allocations instead of every few hundred thousand.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def configure_settings(
    settings: kopf.OperatorSettings,
    *,
    peering: str | None = None,
    priority: int | None = None,
    finalizer: str = FINALIZER,
) -> None:
    """Coalmine's kopf settings: our finalizer name, kopf's bookkeeping in annotations (status stays ours),
    only warnings posted as Events (ours are written by the operator), and peering for HA.

    kopf peering pauses every replica that sees a live peer of higher *or equal* priority, so each replica needs a
    distinct priority: without ``--priority`` a random one is drawn, so exactly one replica (the highest) is active.
    Peering is not fencing (a replica that cannot refresh its keep-alive never pauses): with ``--leader-elect``
    kopf runs standalone (``peering=None``) and the Lease decides who acts (:mod:`controller.operator.leader`).
    """
    settings.persistence.finalizer = finalizer  # one per shard: Shard.finalizer
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="coalmine.dev")
    settings.persistence.diffbase_storage = NoChangeTracking()
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    # On shutdown (SIGTERM, a rolling update of the operator) let a tick that is half-way finish: its actions are
    # already in the cluster, and only a finished tick writes the status that records them. kopf's default gives a
    # running daemon no time at all, so a restart could repeat the last step's Events. Idle daemons exit at once.
    settings.background.instant_exit_timeout = SHUTDOWN_GRACE_S
    if peering:
        settings.peering.name = peering
        settings.peering.standalone = False
        settings.peering.mandatory = True
        settings.peering.priority = priority if priority is not None else random.randint(1, 2**31 - 1)
    else:
        settings.peering.standalone = True


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """A fresh registry with every Coalmine handler (never kopf's global one, so tests stay isolated)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """kopf's default login (the official client's kubeconfig/in-cluster credentials): a fresh registry has
        none of kopf's fallback logins, and without one ``coalmine run`` cannot authenticate at all."""
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def elect_leader(memo: kopf.Memo, **_: Any) -> None:
        """Campaign for the Lease in the background (``--leader-elect``); until this replica leads, ticks skip.
        Not awaited here: a standby must still start, watch and keep its daemons ready to take over."""
        ctx: OperatorContext | None = memo.get("ctx")
        if ctx is not None:
            ctx.leadership.start()

    labels = common.label_filter(config.selector)
    when = common.shard_filter(config.shard)
    watched.register(registry, WATCHED_RESOURCES)
    canary.register(registry, config.tick_seconds, labels, when)
    bluegreen.register(registry, config.tick_seconds, labels, when)

    @kopf.on.cleanup(registry=registry)
    async def close_context(memo: kopf.Memo, **_: Any) -> None:
        ctx: OperatorContext | None = memo.get("ctx")
        if ctx is not None:
            await ctx.aclose(grace_s=SHUTDOWN_GRACE_S)
            await ctx.leadership.aclose()  # after the ticks finished: release the Lease, a standby takes over at once

    return registry


class NoCluster(RuntimeError):
    """No usable Kubernetes API: no credentials, or the server does not answer. The message is one line."""


def kubernetes_configuration() -> k8s_client.Configuration:
    """Credentials like kubectl's: in-cluster when running in a pod, else ``KUBECONFIG``/``~/.kube/config``.

    Raises :class:`NoCluster` when there are none, instead of the client library's traceback.
    """
    configuration = k8s_client.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        try:
            k8s_config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except (k8s_config.ConfigException, OSError, ValueError) as error:
            where = os.environ.get("KUBECONFIG") or "~/.kube/config"
            detail = " ".join(str(error).split()) or type(error).__name__
            raise NoCluster(
                f"no Kubernetes cluster: not in a pod, and {where} has no usable context ({detail})"
            ) from error
    return configuration


def check_cluster(configuration: k8s_client.Configuration, timeout_s: float = 10.0) -> None:
    """Ask the API server for its version once, so an unreachable or refusing cluster is one clear line at start.

    kopf would otherwise retry its startup activities every second forever, logging a stack of errors each time;
    exiting lets the pod's restart policy (or the person at the terminal) deal with it, as Flagger does.
    """
    probe = copy.deepcopy(configuration)
    probe.retries = 0  # one attempt: the client's own retries would only log three warnings first
    api_client = k8s_client.ApiClient(probe)
    try:
        k8s_client.VersionApi(api_client).get_code(_request_timeout=timeout_s)
    except k8s_client.ApiException as error:
        hint = " (the credentials were refused)" if error.status in (401, 403) else ""
        raise NoCluster(f"the Kubernetes API at {configuration.host} answered HTTP {error.status}{hint}") from error
    except Exception as error:  # urllib3's connection errors, TLS errors, timeouts: all mean "not reachable"
        reason = getattr(error, "reason", None) or error
        text = " ".join(str(reason).split())
        raise NoCluster(f"cannot reach the Kubernetes API at {configuration.host}: {text[:300]}") from error
    finally:
        api_client.close()  # type: ignore[no-untyped-call]


def build_context(
    config: OperatorConfig, configuration: k8s_client.Configuration, election: ElectionConfig | None = None
) -> OperatorContext:
    """The per-process context with a Kubernetes client whose requests are bounded in time; with ``election``, a
    Lease election with a client of its own (its requests bounded below the renew deadline, never queued behind
    the ticks')."""
    ctx = _build_context(config, configuration)
    if election is not None:
        leases = KubeClient.from_configuration(
            copy.deepcopy(configuration), timeout_s=election.timeout_s, instance=config.instance
        )
        ctx.leadership = LeaseElection(leases, election)
    return ctx


def _build_context(config: OperatorConfig, configuration: k8s_client.Configuration) -> OperatorContext:
    """The context and the ticks' Kubernetes client, without leader election."""
    # One pooled connection per request that may be in flight; more would be opened and discarded under load.
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, config.concurrency)
    client = KubeClient.from_configuration(
        configuration, timeout_s=config.kubernetes_timeout_s, instance=config.instance
    )
    return OperatorContext(config=config, api=WatchedKubeApi(client, namespaces=config.namespaces))
