"""The sandbox's stand-in data plane: backends, a workload stand-in, an Istio-like router, load and Prometheus.

Each module is a small program (``python -m e2e.sandbox.<name> --help``) so the sandbox can run them as real
processes, exactly as a person would by hand; see ``docs/sandbox.md`` for what is real and what is a stand-in.
"""
