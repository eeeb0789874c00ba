"""Command-line entry points: ``coalmine`` (operator, validate, simulate, judge) and ``kubectl-coalmine``."""
