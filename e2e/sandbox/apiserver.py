"""The emulated Kubernetes API as its own process, for the sandbox.

``python -m e2e.sandbox.apiserver [--port 0] [--namespace test] [--kubeconfig FILE]``

Serves :class:`tests.emulator.CoalmineEmulator` (Coalmine's CRDs, a strict API server with no controllers) on
127.0.0.1 with ``deployments_ready=False``, so the workload stand-in owns Deployment status. It writes a
kubeconfig for it when ``--kubeconfig`` is given, then prints ``LISTENING 127.0.0.1:<port>`` and serves until
SIGTERM/SIGINT. A separate process (rather than a thread of the sandbox) so it can be stopped cleanly and never
competes with the sandbox's own work for the interpreter lock.

The emulator lives under ``tests/``: this runs from a source checkout, with the repository root on ``sys.path``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from urllib.parse import urlsplit

from e2e.sandbox.procs import REPO_ROOT, announce, install_stop_signals


async def serve(port: int, namespace: str, kubeconfig: Path | None) -> None:
    """Serve the emulator until SIGTERM/SIGINT."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.emulator import CoalmineEmulator, serving, write_kubeconfig

    stop = asyncio.Event()
    install_stop_signals(stop)
    emulator = CoalmineEmulator(deployments_ready=False, namespaces=("default", "kube-system", namespace))
    async with serving(emulator, port=port or None) as url:
        if kubeconfig is not None:
            write_kubeconfig(url, kubeconfig, namespace=namespace)
        address = urlsplit(url)
        announce(address.hostname or "127.0.0.1", int(address.port or 0))
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="listen port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--namespace", default="test", help="a namespace to create besides default")
    parser.add_argument("--kubeconfig", type=Path, default=None, help="write a kubeconfig for this server here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(args.port, args.namespace, args.kubeconfig))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
