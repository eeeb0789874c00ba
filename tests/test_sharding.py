"""``coalmine run --shard I/N``: N operators split the Canaries by a stable hash of ``namespace/name``.

What a user relies on: every process computes the same shard for an object (golden values, taken from
``sha256sum`` rather than from the code under test), the shards partition the objects fairly, a bad ``--shard`` is
refused naming the option, and two real operators over HTTP with ``--shard 0/2`` and ``--shard 1/2`` over one
namespace initialise each Canary exactly once, each one the shard it hashes to.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from emulator import CoalmineEmulator
from operator_harness import (
    CANARIES,
    DEPLOYMENTS,
    EVENTS,
    NS,
    History,
    OperatorRun,
    canary,
    deployment,
    status_of,
    test_config,
    wait_for,
)

from controller.handlers.common import shard_filter
from controller.operator.sharding import EVERYTHING, Shard, parse_shard, shard_of

# (namespace, name) → shard for N = 2, 3, 4, 7, 16: the first 8 bytes of `printf '%s' NS/NAME | sha256sum`, mod N.
GOLDEN = {
    ("default", "podinfo"): (1, 1, 1, 2, 1),
    ("prod", "checkout"): (0, 1, 0, 5, 8),
    ("team-a", "api-gateway"): (1, 1, 1, 5, 1),
    ("default", "app-0"): (1, 0, 3, 2, 11),
    ("équipe", "café"): (0, 1, 0, 5, 4),  # UTF-8 bytes, not code points or Latin-1
    ("kube-system", "a"): (0, 1, 2, 5, 14),
}
COUNTS = (2, 3, 4, 7, 16)


# -- the hash ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("namespace", "name"), sorted(GOLDEN))
def test_the_shard_of_a_name_is_the_documented_sha256(namespace: str, name: str) -> None:
    assert tuple(shard_of(namespace, name, n) for n in COUNTS) == GOLDEN[(namespace, name)]
    assert shard_of(namespace, name, 1) == 0


def test_the_shard_is_the_same_in_another_process_with_another_hash_seed() -> None:
    """Python's own ``hash()`` of a str changes with PYTHONHASHSEED; the shard must not."""
    code = "from controller.operator.sharding import shard_of; print(shard_of('prod', 'checkout', 16), hash('x'))"
    answers = set()
    hashes = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        shard, python_hash = out.stdout.split()
        answers.add(int(shard))
        hashes.add(python_hash)
    assert answers == {GOLDEN[("prod", "checkout")][-1]}
    assert len(hashes) == 2, "the seeds did not change hash(): the check above proves nothing"


def test_shards_partition_names_and_are_balanced() -> None:
    names = [(f"team-{i % 37}", f"app-{i}") for i in range(2000)]
    for count in (1, 2, 4, 7):
        owners = [[s for s in range(count) if Shard(s, count).owns(ns, name)] for ns, name in names]
        assert all(len(found) == 1 for found in owners), "a name in no shard, or in two"
        sizes = Counter(found[0] for found in owners)
        assert set(sizes) == set(range(count))
        expected = len(names) / count
        for shard, size in sizes.items():
            assert abs(size - expected) <= 0.2 * expected, f"shard {shard}/{count} has {size} of {len(names)}"


def test_the_hash_is_sha256_of_namespace_slash_name() -> None:
    digest = hashlib.sha256(b"a/b").digest()
    assert shard_of("a", "b", 1000) == int.from_bytes(digest[:8], "big") % 1000
    assert shard_of("ab", "c", 1000) != shard_of("a", "bc", 1000)


# -- --shard I/N ---------------------------------------------------------------------------------------------------


def test_shard_text_parses_and_bad_values_are_refused() -> None:
    assert parse_shard("0/1") == EVERYTHING
    assert parse_shard(" 2/4 ") == Shard(2, 4)
    assert str(parse_shard("3/4")) == "3/4"
    for bad in ("4/4", "1/1", "0/0", "-1/2", "1", "a/b", "1/2/3", "", "1/-2"):
        with pytest.raises(ValueError, match=r"I/N|N must|shard I"):
            parse_shard(bad)
    with pytest.raises(ValueError):
        Shard(2, 2)


COALMINE = Path(sys.executable).with_name("coalmine")


def _coalmine_run(*args: str, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    """The installed ``coalmine`` script, as a user runs it (the kubeconfig names no cluster)."""
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"} | {"KUBECONFIG": str(kubeconfig)}
    command = [str(COALMINE), "run", "-A", "--metrics-port", "0", "--liveness-port", "0", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("bad", ["2/2", "x"])
def test_coalmine_run_refuses_a_bad_shard_naming_the_option(bad: str, tmp_path: Path) -> None:
    result = _coalmine_run("--shard", bad, kubeconfig=tmp_path / "missing")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--shard" in result.stderr and "I/N" not in result.stdout


def test_coalmine_run_accepts_a_good_shard(tmp_path: Path) -> None:
    """It gets as far as looking for the cluster (none here: one line, exit 1)."""
    result = _coalmine_run("--shard", "1/2", kubeconfig=tmp_path / "missing")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no Kubernetes cluster" in result.stderr


def test_one_shard_registers_no_filter_and_a_shard_filters_by_name() -> None:
    assert shard_filter(EVERYTHING) is None, "the default must cost kopf nothing per event"
    for index in (0, 1):
        when = shard_filter(Shard(index, 2))
        assert when is not None
        for namespace, name in GOLDEN:
            assert when(namespace=namespace, name=name, body={}) == (GOLDEN[(namespace, name)][0] == index)


# -- two real operators --------------------------------------------------------------------------------------------


NAMES = [f"app-{i}" for i in range(8)]


async def test_two_shard_operators_initialise_each_canary_exactly_once(emulator: CoalmineEmulator) -> None:
    expected = {name: shard_of(NS, name, 2) for name in NAMES}
    assert sorted(Counter(expected.values()).values())[0] >= 2, "pick names that put several in each shard"
    for name in NAMES:
        emulator.create_object(DEPLOYMENTS, deployment(name, f"{name}:1"), NS)
        emulator.create_object(CANARIES, canary(name), NS)
    runs = [
        OperatorRun(emulator, test_config(shard=Shard(index, 2), instance=f"coalmine-shard-{index}"))
        for index in (0, 1)
    ]
    try:
        for run in runs:
            await run.start()

        def initialised() -> list[str]:
            return [n for n in NAMES if status_of(emulator, n).get("phase") == "Initialized"]

        await wait_for("every Canary Initialized", lambda: len(initialised()) == len(NAMES))
        await asyncio.sleep(1.0)  # several more 0.2 s ticks: a second operator would have acted by now
    finally:
        for run in reversed(runs):  # kopf stops every task started after it: the later operator first
            await run.stop()

    by_canary: dict[str, Counter[str]] = {name: Counter() for name in NAMES}
    for event in emulator.list_objects(EVENTS, NS):
        regarding = event.get("regarding") or {}
        if regarding.get("kind") == "Canary" and regarding.get("name") in by_canary:
            by_canary[regarding["name"]][(event["reportingInstance"], event["reason"])] += 1
    for name, seen in by_canary.items():
        instances = {instance for instance, _ in seen}
        assert instances == {f"coalmine-shard-{expected[name]}"}, f"{name}: Events from {sorted(instances)}"
        initialized = sum(count for (_, reason), count in seen.items() if reason == "Initialized")
        assert initialized == 1, f"{name}: {dict(seen)}"
        primary = emulator.read_object(DEPLOYMENTS, NS, f"{name}-primary")
        assert primary is not None


async def test_an_operator_leaves_the_other_shards_canaries_alone(emulator: CoalmineEmulator) -> None:
    """Like ``--selector``: no status, no finalizer, no primary for a Canary of another shard."""
    mine = [n for n in NAMES if shard_of(NS, n, 2) == 0]
    others = [n for n in NAMES if shard_of(NS, n, 2) == 1]
    for name in NAMES:
        emulator.create_object(DEPLOYMENTS, deployment(name, f"{name}:1"), NS)
        emulator.create_object(CANARIES, canary(name), NS)
    run = OperatorRun(emulator, test_config(shard=Shard(0, 2)))
    await run.start()
    try:
        await wait_for(
            "shard 0's Canaries Initialized",
            lambda: all(status_of(emulator, n).get("phase") == "Initialized" for n in mine),
        )
        await asyncio.sleep(1.0)
    finally:
        await run.stop()
    for name in others:
        ignored = emulator.read_object(CANARIES, NS, name) or {}
        assert not (ignored.get("status") or {}).get("phase"), ignored.get("status")
        assert not (ignored.get("metadata") or {}).get("finalizers")
        assert emulator.read_object(DEPLOYMENTS, NS, f"{name}-primary") is None


async def test_shards_over_one_namespace_leave_each_others_finalizers_alone(emulator: CoalmineEmulator) -> None:
    history = History.install(emulator)
    for name in NAMES:
        emulator.create_object(DEPLOYMENTS, deployment(name, f"{name}:1"), NS)
        emulator.create_object(CANARIES, canary(name), NS)
    runs = [OperatorRun(emulator, test_config(shard=Shard(index, 2))) for index in (0, 1)]
    try:
        for run in runs:
            await run.start()
        await asyncio.sleep(3.0)
    finally:
        for run in reversed(runs):
            await run.stop()
    for name in NAMES:
        seen = [tuple(w.obj["metadata"].get("finalizers") or ()) for w in history.of("/canaries", name)]
        changes = sum(1 for before, after in itertools.pairwise(seen) if before != after)
        assert changes <= 1, f"{name}: its finalizer came and went {changes} times"


async def test_a_finalizer_left_by_an_earlier_shard_layout_does_not_block_deletion(emulator: CoalmineEmulator) -> None:
    """N changed from 4 to 2: the Canary still carries shard 3's finalizer, which no running process owns."""
    name = next(n for n in NAMES if shard_of(NS, n, 2) == 0)
    emulator.create_object(DEPLOYMENTS, deployment(name, f"{name}:1"), NS)
    body = canary(name)
    body["metadata"]["finalizers"] = ["coalmine.dev/finalizer-shard-3", "example.com/keep-me"]
    emulator.create_object(CANARIES, body, NS)
    run = OperatorRun(emulator, test_config(shard=Shard(0, 2)))
    await run.start()
    try:
        await wait_for("Initialized", lambda: status_of(emulator, name).get("phase") == "Initialized")
        finalizers = emulator.read_object(CANARIES, NS, name)["metadata"]["finalizers"]
        assert Shard(0, 2).finalizer in finalizers
        emulator.delete_object(CANARIES, NS, name)

        def only_foreign_left() -> bool:
            obj = emulator.read_object(CANARIES, NS, name)
            return obj is not None and (obj["metadata"].get("finalizers") or []) == ["example.com/keep-me"]

        await wait_for("Coalmine's finalizers, stale ones included, removed", only_foreign_left)
    finally:
        await run.stop()
