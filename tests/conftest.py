"""Shared pytest setup. Fixtures that start real components (Prometheus, the emulated API) live in their own modules."""
