"""Shared pytest setup. Fixtures that start real components (Prometheus, the emulated API) live in their own modules."""

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
