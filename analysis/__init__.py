"""Coalmine's analysis engine: pure statistics (the judge, the sequential tests, the synthetic traffic model).

No I/O and never ``controller``: the metric providers that read Prometheus live with the other adapters in
:mod:`controller.providers`.
"""
