"""The chaos run: ``kill -9`` the operator at random moments during rollouts, restart it, and check the record.

Several rollouts run in sequence in the sandbox (healthy and faulty alternately). While each one runs, the
operator is killed with SIGKILL after a random 1.5–4 s and restarted after a random pause of up to half a second.
Meanwhile a :class:`~e2e.sandbox.observe.Sampler` reads the VirtualService every 0.1 s and an AlertProvider of type
``webhook`` posts to a local :class:`~e2e.sandbox.recorder.WebhookRecorder`. At the end, per rollout:

- **outcome**: healthy → ``Succeeded``, faulty → ``Failed``;
- **weights**: the mesh never gives the canary a weight that is not one of the Canary's steps, and never jumps
  more than one step up at once;
- **promotions**: the primary's pod template changes exactly once for a healthy rollout, never for a faulty one;
- **Events**: no (reason, message) recorded twice, and the milestones are all there (``NewRevision``, each
  ``Advanced`` weight, ``Promoting`` and ``Succeeded`` — or a terminal failure);
- **notifications**: for each notable Event exactly one distinct notification ``id`` (none lost, none twice);
  redeliveries of the same ``id`` (a message in flight when the operator died, sent again) are counted separately.

The operator announces a transition one tick after writing it (``status.outbox``), so after each rollout the run
waits for the Canary's outbox to drain before it counts.
"""

from __future__ import annotations

import collections
import itertools
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controller.kube.api import ALERT_PROVIDERS, CANARIES, DEPLOYMENTS, EVENTS, KubeApi
from controller.notify.severity import is_notable
from controller.rollout.decision import Reason
from e2e.sandbox import manifests
from e2e.sandbox.observe import Sample, Sampler
from e2e.sandbox.recorder import Delivery, WebhookRecorder
from e2e.sandbox.stack import Stack

STEPS = (10, 20, 30, 40, 50)
TIMING = manifests.Timing(interval_s=6, metric_interval_s=15, threshold=2, min_requests=30)
FAILURE_REASONS = frozenset({"RolledBack", "ComparisonRejected", "Aborted", "ProgressDeadlineExceeded"})
ROLLOUT_DEADLINE_S = 120.0


@dataclass(frozen=True)
class RolloutRecord:
    """What one rollout did, as checked after the run."""

    release: manifests.Release
    phase: str
    kills: int
    weight_violations: list[str]
    promotions: int
    duplicate_events: list[str]
    lost_events: list[str]
    duplicate_notifications: list[str]
    lost_notifications: list[str]
    redeliveries: int
    events: int = 0
    notifications: int = 0
    delivered: tuple[str, ...] = ()  # the reasons of the messages that arrived

    @property
    def correct(self) -> bool:
        return self.phase == self.release.expect

    @property
    def promoted_wrongly(self) -> bool:
        return self.promotions != (1 if self.release.expect == "Succeeded" else 0)

    @property
    def clean(self) -> bool:
        return (
            self.correct
            and not self.weight_violations
            and not self.promoted_wrongly
            and not self.duplicate_events
            and not self.lost_events
            and not self.duplicate_notifications
            and not self.lost_notifications
        )


@dataclass
class ChaosReport:
    """Every rollout's record and the totals the bench prints."""

    rollouts: list[RolloutRecord] = field(default_factory=list)
    operator_starts: int = 0
    elapsed_s: float = 0.0

    @property
    def kills(self) -> int:
        return sum(r.kills for r in self.rollouts)

    def tally(self) -> dict[str, int]:
        rows = self.rollouts
        return {
            "kills": self.kills,
            "rollouts": len(rows),
            "correct outcomes": sum(r.correct for r in rows),
            "weight violations": sum(len(r.weight_violations) for r in rows),
            "wrong promotion counts": sum(r.promoted_wrongly for r in rows),
            "duplicate events": sum(len(r.duplicate_events) for r in rows),
            "lost events": sum(len(r.lost_events) for r in rows),
            "duplicate notifications": sum(len(r.duplicate_notifications) for r in rows),
            "lost notifications": sum(len(r.lost_notifications) for r in rows),
            "redeliveries (same id)": sum(r.redeliveries for r in rows),
            "events checked": sum(r.events for r in rows),
            "notifications checked": sum(r.notifications for r in rows),
        }


def weight_violations(samples: Sequence[Sample]) -> list[str]:
    """Mesh weights that are no step of the Canary, or a rise of more than one step between two samples."""
    allowed = (0, *STEPS)
    found: list[str] = []
    previous = 0
    for sample in samples:
        weight = sample.mesh_weight
        if weight is None:
            continue
        if weight not in allowed:
            found.append(f"t={sample.t:.1f}s weight {weight} is not a step")
        elif weight > previous and allowed.index(weight) > allowed.index(previous) + 1:
            found.append(f"t={sample.t:.1f}s weight jumped {previous} → {weight}")
        previous = weight
    return found


def promotions(samples: Sequence[Sample]) -> int:
    """How many times the primary's pod template changed across ``samples``."""
    templates = [s.primary_template for s in samples if s.primary_template]
    return sum(1 for before, after in itertools.pairwise(templates) if before != after)


def event_time(event: Mapping[str, Any]) -> float:
    stamp = str(event.get("eventTime") or "")
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


def check_events(events: Sequence[Mapping[str, Any]], release: manifests.Release) -> tuple[list[str], list[str]]:
    """(duplicates, missing milestones) among one rollout's Events."""
    seen = collections.Counter((str(e.get("reason")), str(e.get("note"))) for e in events)
    duplicates = [f"{reason}: {note} ×{n}" for (reason, note), n in seen.items() if n > 1]
    reasons = collections.Counter(reason for reason, _ in seen.elements())
    advanced = {note for reason, note in seen if reason == Reason.ADVANCED.value}
    missing = [r for r in (Reason.NEW_REVISION.value,) if not reasons[r]]
    if release.expect == "Succeeded":
        missing += [r for r in (Reason.PROMOTING.value, Reason.SUCCEEDED.value) if not reasons[r]]
        missing += [f"Advanced to {w}" for w in STEPS if not any(note.endswith(f" {w}") for note in advanced)]
    elif not FAILURE_REASONS & set(reasons):
        missing.append("a rollback Event")
    return duplicates, missing


def check_notifications(
    events: Sequence[Mapping[str, Any]], deliveries: Sequence[Delivery]
) -> tuple[list[str], list[str], int]:
    """(duplicate transitions, lost transitions, redeliveries): per reason, distinct ids against notable Events."""
    expected = collections.Counter(
        str(e.get("reason")) for e in events if str(e.get("reason")) in _NOTABLE and e.get("type") is not None
    )
    ids: dict[str, set[str]] = collections.defaultdict(set)
    for delivery in deliveries:
        ids[str(delivery.body.get("reason"))].add(str(delivery.body.get("id")))
    duplicated = [f"{r}: {len(ids[r])} messages for {expected[r]} Events" for r in ids if len(ids[r]) > expected[r]]
    lost = [f"{r}: {len(ids[r])} messages for {n} Events" for r, n in expected.items() if len(ids[r]) < n]
    return duplicated, lost, len(deliveries) - sum(len(v) for v in ids.values())


_NOTABLE = frozenset(reason.value for reason in Reason if is_notable(reason))


def run_chaos(
    *,
    min_kills: int,
    min_rollouts: int = 4,
    seed: int | None = None,
    rps: float = 40.0,
    gap_s: tuple[float, float] = (1.5, 4.0),
    echo: Callable[[str], None] = print,
    keep: bool = False,
) -> ChaosReport:
    """Run rollouts until at least ``min_kills`` kills and ``min_rollouts`` rollouts happened (see module doc)."""
    rng = random.Random(seed)
    report = ChaosReport()
    started = time.monotonic()
    with WebhookRecorder() as recorder, Stack(keep=keep) as stack:
        api, ns, name = stack.cluster.api, stack.namespace, stack.service
        api.create(ALERT_PROVIDERS, ns, manifests.webhook_provider(ns, "recorder", recorder.url))
        api.create(DEPLOYMENTS, ns, manifests.deployment(ns, name, manifests.Release("1.0.0", 0.005)))
        api.create(CANARIES, ns, manifests.canary(ns, name, TIMING, alert_provider="recorder"))
        sampler = Sampler(api, ns, name, period_s=0.1).start()
        stack.start_load(rps, 3600)
        try:
            _wait(sampler, lambda s: s.phase == "Initialized", 60, "Initialized")
            index = 0
            while report.kills < min_kills or len(report.rollouts) < min_rollouts:
                index += 1
                healthy = index % 2 == 1
                release = manifests.Release(f"1.0.{index}", 0.005 if healthy else 0.1)
                release = release if healthy else manifests.Release(release.version, 0.1, expect="Failed")
                report.rollouts.append(_one_rollout(stack, sampler, recorder, release, rng, gap_s))
                last = report.rollouts[-1]
                echo(
                    f"rollout {index} {release.version} ({'healthy' if healthy else 'faulty'}): {last.phase} "
                    f"with {last.kills} kills{'' if last.clean else ' — NOT CLEAN'}"
                )
                if last.phase not in ("Succeeded", "Failed"):
                    break  # a stuck rollout: the report shows it; the next one would start from a mess
                # The canary workload keeps its name across releases and the checks look back one metric interval
                # at it: let this release's traffic age out of the windows before the next release.
                time.sleep(TIMING.metric_interval_s + 1)
        finally:
            sampler.stop()
            report.operator_starts = stack.operator_starts
    report.elapsed_s = time.monotonic() - started
    return report


def _wait(sampler: Sampler, predicate: Callable[[Sample], bool], timeout_s: float, what: str) -> Sample:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        latest = sampler.latest()
        if latest is not None and predicate(latest):
            return latest
        time.sleep(0.05)
    raise RuntimeError(f"no {what} within {timeout_s:g} s")


def _drain(api: KubeApi, namespace: str, name: str, timeout_s: float = 30.0) -> None:
    """Wait until the Canary's outbox is empty: the terminal transition's Events and messages have gone out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        canary = api.get(CANARIES, namespace, name) or {}
        if not (canary.get("status") or {}).get("outbox"):
            return
        time.sleep(0.1)


def _one_rollout(
    stack: Stack,
    sampler: Sampler,
    recorder: WebhookRecorder,
    release: manifests.Release,
    rng: random.Random,
    gap_s: tuple[float, float],
) -> RolloutRecord:
    api, ns, name = stack.cluster.api, stack.namespace, stack.service
    begin_wall, begin_t = time.time(), sampler.now()
    api.patch(DEPLOYMENTS, ns, name, {"spec": {"template": {"spec": manifests.release_patch(release)}}})
    revision_seen = False
    kills = 0
    phase = "Timeout"
    deadline = time.monotonic() + ROLLOUT_DEADLINE_S
    next_kill = time.monotonic() + rng.uniform(*gap_s)
    while time.monotonic() < deadline:
        latest = sampler.latest()
        if latest is not None and latest.t > begin_t:
            revision_seen = revision_seen or latest.phase == "Progressing"
            if revision_seen and latest.phase in ("Succeeded", "Failed"):
                phase = latest.phase
                break
        if time.monotonic() >= next_kill:
            stack.kill_operator()
            kills += 1
            time.sleep(rng.uniform(0.0, 0.5))
            stack.start_operator()
            next_kill = time.monotonic() + rng.uniform(*gap_s)
        time.sleep(0.05)
    if not stack.operator_alive():
        stack.start_operator()
    _drain(api, ns, name)
    time.sleep(1.5)  # late side effects of the last tick (a second promotion, a late message) land in this window
    end_wall = time.time()
    samples = [s for s in sampler.samples if s.t >= begin_t]
    events = [
        e
        for e in api.list(EVENTS, ns)
        if (e.get("regarding") or {}).get("name") == name and begin_wall <= event_time(e) <= end_wall
    ]
    deliveries = [d for d in recorder.snapshot() if begin_wall <= d.at <= end_wall]
    duplicate_events, lost_events = check_events(events, release)
    duplicate_notes, lost_notes, redeliveries = check_notifications(events, deliveries)
    return RolloutRecord(
        release=release,
        phase=phase,
        kills=kills,
        weight_violations=weight_violations(samples),
        promotions=promotions(samples),
        duplicate_events=duplicate_events,
        lost_events=lost_events,
        duplicate_notifications=duplicate_notes,
        lost_notifications=lost_notes,
        redeliveries=redeliveries,
        events=len(events),
        notifications=len(deliveries),
        delivered=tuple(str(d.body.get("reason")) for d in deliveries),
    )
