"""Shared pytest setup. Fixtures that start real components (Prometheus, the emulated API) live in their own modules."""

import sys
from pathlib import Path

# The repository root, for the ``e2e`` package (not installed): what ``python -m pytest`` from the root already
# gives, so that a bare ``pytest`` behaves the same.
if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The emulated Kubernetes API (tests/emulator): fixtures available to every test module.
from emulator.fixtures import (  # noqa: F401
    emulator,
    fault_policy,
    k8s_client,
    kubeconfig,
    no_implicit_event_loop,
    threaded_emulator,
)
