"""An emulated Kubernetes API (kmock-based) for Coalmine's integration tests; see ``server`` for its scope."""

from .faults import Fault, FaultInjector, FaultKind, FaultPolicy
from .fixtures import (
    ThreadedEmulator,
    api_client_for,
    operator_settings,
    running_operator,
    write_kubeconfig,
)
from .server import CoalmineEmulator, crd_files, serving

__all__ = [
    "CoalmineEmulator",
    "Fault",
    "FaultInjector",
    "FaultKind",
    "FaultPolicy",
    "ThreadedEmulator",
    "api_client_for",
    "crd_files",
    "operator_settings",
    "running_operator",
    "serving",
    "write_kubeconfig",
]
