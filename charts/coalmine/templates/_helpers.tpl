{{/* Names and labels shared by every object of the release. */}}

{{- define "coalmine.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "coalmine.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "coalmine.selectorLabels" -}}
app.kubernetes.io/name: {{ include "coalmine.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "coalmine.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "coalmine.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: coalmine
{{- end -}}

{{- define "coalmine.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "coalmine.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "coalmine.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The namespaces the operator watches in namespaced mode. Fails rendering (like the schema) if there are none, so a
misconfigured release never installs an operator that watches nothing.
*/}}
{{- define "coalmine.watchedNamespaces" -}}
{{- if eq .Values.watch.mode "namespaced" -}}
{{- if not .Values.watch.namespaces -}}
{{- fail "watch.mode=namespaced needs at least one namespace in watch.namespaces" -}}
{{- end -}}
{{- join "," .Values.watch.namespaces -}}
{{- end -}}
{{- end -}}

{{/* Replicas: replicaCount if set, else 2 with HA (one active, one standby) and 1 without. */}}
{{- define "coalmine.replicas" -}}
{{- if kindIs "invalid" .Values.replicaCount -}}
{{- ternary 2 1 .Values.ha.enabled -}}
{{- else -}}
{{- .Values.replicaCount -}}
{{- end -}}
{{- end -}}

{{/*
Sharding (sharding.shards, `coalmine run --shard I/N`). The shard helpers take a context with `.shard` and `.shards`
(deployment.yaml builds it); with one shard they give exactly the names and labels of an unsharded release.
*/}}
{{- define "coalmine.shards" -}}
{{- $shards := 1 -}}
{{- with .Values.sharding }}{{ $shards = int (default 1 .shards) }}{{ end -}}
{{- $shards -}}
{{- end -}}

{{/* `<fullname>-shard-I`, or the fullname with one shard. */}}
{{- define "coalmine.shardName" -}}
{{- if gt (int .shards) 1 -}}
{{- printf "%s-shard-%d" (include "coalmine.fullname" .) (int .shard) -}}
{{- else -}}
{{- include "coalmine.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* How the replicas agree on who acts: "lease" (fencing, --leader-elect), "peering" (kopf), or "" without HA. */}}
{{- define "coalmine.election" -}}
{{- if .Values.ha.enabled -}}
{{- default "lease" .Values.ha.election -}}
{{- end -}}
{{- end -}}

{{/* The Lease of --leader-elect: `<leaseName>-shard-I`, so each shard elects its own leader. */}}
{{- define "coalmine.leaseName" -}}
{{- if gt (int .shards) 1 -}}
{{- printf "%s-shard-%d" (default "coalmine" .Values.ha.leaseName) (int .shard) -}}
{{- else -}}
{{- default "coalmine" .Values.ha.leaseName -}}
{{- end -}}
{{- end -}}

{{/* kopf's peering name: `<peeringName>-shard-I`, so each shard is its own HA pair with one active replica. */}}
{{- define "coalmine.peeringName" -}}
{{- if gt (int .shards) 1 -}}
{{- printf "%s-shard-%d" .Values.ha.peeringName (int .shard) -}}
{{- else -}}
{{- .Values.ha.peeringName -}}
{{- end -}}
{{- end -}}

{{/* The label that tells one shard's pods from another's (nothing with one shard). */}}
{{- define "coalmine.shardLabel" -}}
{{- if gt (int .shards) 1 -}}
coalmine.dev/shard: {{ .shard | quote }}
{{- end -}}
{{- end -}}

{{- define "coalmine.shardSelectorLabels" -}}
{{ include "coalmine.selectorLabels" . }}
{{- with include "coalmine.shardLabel" . }}
{{ . }}
{{- end -}}
{{- end -}}
