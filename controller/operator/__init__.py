"""The imperative shell around the pure engine: gather observations, run looks and hooks, act, write status.

``reconcile`` is one tick for one Canary; ``controller.handlers`` registers it with kopf. Everything that decides
lives in ``controller.rollout`` and ``analysis``; these modules only read, call and write.
"""
