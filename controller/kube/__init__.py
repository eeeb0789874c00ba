"""Kubernetes adapters.

Pure: :mod:`.objects` (builders for the primary Deployment, Services, HPA, Events), :mod:`.configs` (ConfigMap and
Secret tracking), :mod:`.health` (readiness), :mod:`.meta` (names, owner references). Effectful: :mod:`.client`
(the one client every API call goes through) and :mod:`.apply` (idempotent appliers). Errors: :mod:`.errors`,
rooted at :class:`~controller.kube.errors.KubeError`.
"""
