"""The ``kubectl coalmine`` plugin's parts: cluster access, summaries, rendering, requests and waiting."""
