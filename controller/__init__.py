"""Coalmine's operator: everything that touches Kubernetes, plus the pure rollout engine in ``controller.rollout``."""
