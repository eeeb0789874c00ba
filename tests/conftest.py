"""Shared pytest setup. Fixtures that start real components (Prometheus, the emulated API) live in their own modules."""

import os
from collections.abc import Iterator

import pytest

# ``pythonpath = [".", "tests"]`` in pyproject.toml puts the repository root (for the ``e2e`` package) and this
# folder (for ``emulator``, ``http_recorder``…) on sys.path, for ``pytest`` and ``python -m pytest`` alike.
# The emulated Kubernetes API (tests/emulator): fixtures available to every test module.
from emulator.fixtures import (  # noqa: F401
    emulator,
    fault_policy,
    k8s_client,
    kubeconfig,
    no_implicit_event_loop,
    threaded_emulator,
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI (``CI`` set), a test that skips because the real Prometheus is unavailable fails instead.

    Locally a missing ``prometheus`` package may be a fair reason to skip; in CI ``make test`` installs it, so a skip
    there would silently drop the only end-to-end Prometheus tests.
    """
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") and "prometheus" in str(report.longrepr).lower():
        report.outcome = "failed"
        report.longrepr = f"Prometheus was required in CI but unavailable: {report.longrepr}"
