"""Coalmine's analysis engine: pure statistics (the judge) and metric providers. Never imports ``controller``."""
