"""Schemas of the objects Coalmine writes for others (Istio), shipped with the package and checked offline.

A Canary's Istio pass-through fields (``retries``, ``corsPolicy``, ``trafficPolicy``…) are copied into a
VirtualService or DestinationRule. They are validated here against Istio's own CRD schema, CEL rules included, so a
value the API server would refuse (``perTryTimeout: 0s``) or prune (``perTryTimout``) is refused before a rollout
starts, naming the Canary field.
"""
