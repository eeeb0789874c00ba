{{/*
The operator's permissions, in ONE place and independent of values on purpose: a test renders these helpers and
compares them with the (verb, resource) pairs the operator was recorded calling against the emulated API server
(tests/test_rbac_from_use.py): nothing missing, nothing extra.
docs/install.md explains every rule. The templates in rbac.yaml only decide WHERE the rules are bound (ClusterRole
in cluster mode, a Role per watched namespace in namespaced mode), never WHAT they grant.

Nothing here lists or watches Secrets (that would be reading every Secret in the namespace): the operator gets
the provider-credential Secrets and ConfigMaps/Secrets the target references by name, and writes their -primary
copies.
*/}}

{{/* Inside each watched namespace (ClusterRole in cluster mode, Role per namespace in namespaced mode). */}}
{{- define "coalmine.rbac.namespacedRules" -}}
- apiGroups: ["coalmine.dev"]
  resources: ["canaries", "bluegreens"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["coalmine.dev"]
  resources: ["canaries/status", "bluegreens/status"]
  verbs: ["patch"]
- apiGroups: ["coalmine.dev"]
  resources: ["canaries/finalizers", "bluegreens/finalizers"]
  verbs: ["update"]
- apiGroups: ["coalmine.dev"]
  resources: ["metrictemplates", "alertproviders"]
  verbs: ["get"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "update", "patch"]
- apiGroups: [""]
  resources: ["services", "configmaps", "secrets"]
  verbs: ["get", "create", "update"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "create", "update"]
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices", "destinationrules"]
  verbs: ["get", "list", "watch", "create", "update", "delete"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "create", "update", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* kopf's namespaced peering (HA in namespaced mode): read and renew the keep-alives in each namespace. */}}
{{- define "coalmine.rbac.peeringRules" -}}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end -}}

{{/*
--leader-elect: read and renew only the chart's own Leases (one per shard); creating cannot be limited to a name.
Never in the ClusterRole: taking any Lease cluster-wide could take over another controller's leader election.
*/}}
{{- define "coalmine.rbac.leaseRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["create"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames:
    {{- $shards := include "coalmine.shards" . | int }}
    {{- range $shard := until $shards }}
    - {{ include "coalmine.leaseName" (dict "Values" $.Values "shard" $shard "shards" $shards) }}
    {{- end }}
  verbs: ["get", "update"]
{{- end -}}

{{/* Cluster-scoped reads every mode needs: kopf discovers and re-scans the CRDs it serves. */}}
{{- define "coalmine.rbac.discoveryRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end -}}

{{/* Namespaced mode only: kopf lists namespaces to match --namespace names (else it warns and guesses). */}}
{{- define "coalmine.rbac.namespaceRules" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end -}}

{{/* kopf's cluster-wide peering (HA in cluster mode). */}}
{{- define "coalmine.rbac.clusterPeeringRules" -}}
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end -}}
