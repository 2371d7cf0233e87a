{{/*
Names, labels, images and connection strings shared by every QLP chart.

Naming is deliberately predictable: every object of a service is called
"<release>-<chart name>" (e.g. "qlp-identity"), so the umbrella chart and
operators can address a service without knowing how it was installed.
*/}}

{{- define "qlp-lib.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "qlp-lib.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "qlp-lib.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "qlp-lib.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The platform service this chart runs: the argument of `python -m qlp_kit.serve`. */}}
{{- define "qlp-lib.serviceName" -}}
{{- default .Chart.Name .Values.serviceName -}}
{{- end -}}

{{/* Environment prefix of the service's settings class, e.g. QLP_IDENTITY_. */}}
{{- define "qlp-lib.envPrefix" -}}
{{- $default := printf "QLP_%s_" (include "qlp-lib.serviceName" . | upper | replace "-" "_") -}}
{{- default $default .Values.envPrefix -}}
{{- end -}}

{{/* A label-safe version string from an image tag (drops any @digest). */}}
{{- define "qlp-lib.labelValue" -}}
{{- $v := regexReplaceAll "@.*$" (toString .) "" -}}
{{- regexReplaceAll "[^A-Za-z0-9._-]" $v "-" | trunc 63 | trimAll "-._" -}}
{{- end -}}

{{- define "qlp-lib.imageTag" -}}
{{- $image := .Values.image | default dict -}}
{{- default .Chart.AppVersion $image.tag -}}
{{- end -}}

{{/*
Standard labels for any QLP object.
Usage: include "qlp-lib.labelsFor" (dict "ctx" $ "name" "kafka" "component" "kafka" "version" "4.0.0")
*/}}
{{- define "qlp-lib.selectorLabelsFor" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- end -}}

{{- define "qlp-lib.labelsFor" -}}
helm.sh/chart: {{ include "qlp-lib.chart" .ctx }}
{{ include "qlp-lib.selectorLabelsFor" . }}
app.kubernetes.io/version: {{ include "qlp-lib.labelValue" .version | quote }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: qlp
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end -}}

{{- define "qlp-lib.selectorLabels" -}}
{{ include "qlp-lib.selectorLabelsFor" (dict "ctx" . "name" (include "qlp-lib.name" .)) }}
{{- end -}}

{{- define "qlp-lib.labels" -}}
{{ include "qlp-lib.labelsFor" (dict "ctx" . "name" (include "qlp-lib.name" .) "component" (default "service" .Values.component) "version" (include "qlp-lib.imageTag" .)) }}
{{- end -}}

{{/*
Image reference: repository:tag, or repository:tag@digest when a digest is given
(skaffold sets image.digest), tag defaulting to the chart appVersion.
*/}}
{{- define "qlp-lib.image" -}}
{{- $image := .Values.image | default dict -}}
{{- $repo := required "image.repository is required" $image.repository -}}
{{- $ref := printf "%s:%s" $repo (include "qlp-lib.imageTag" .) -}}
{{- if $image.digest -}}
{{- $ref = printf "%s@%s" $ref $image.digest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{- define "qlp-lib.serviceAccountName" -}}
{{- $sa := .Values.serviceAccount | default dict -}}
{{- if (hasKey $sa "create" | ternary $sa.create true) -}}
{{- default (include "qlp-lib.fullname" .) $sa.name -}}
{{- else -}}
{{- default "default" $sa.name -}}
{{- end -}}
{{- end -}}

{{/*
Connection strings. Order of precedence:
  1. the chart's own kafka.bootstrapServers / mongodb.url,
  2. global.externalKafka.bootstrapServers / global.externalMongodb.url (set once
     in the umbrella chart for every service),
  3. the in-cluster Kafka / MongoDB the umbrella chart brings, named after the release.
*/}}
{{- define "qlp-lib.kafkaExternal" -}}
{{- $own := dig "bootstrapServers" "" (.Values.kafka | default dict) -}}
{{- $global := dig "externalKafka" "bootstrapServers" "" (.Values.global | default dict) -}}
{{- default $global $own -}}
{{- end -}}

{{- define "qlp-lib.kafkaBootstrapServers" -}}
{{- $ext := include "qlp-lib.kafkaExternal" . -}}
{{- if $ext -}}
{{- $ext -}}
{{- else -}}
{{- printf "%s-kafka.%s.svc:9092" .Release.Name .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{- define "qlp-lib.mongodbExternal" -}}
{{- $own := dig "url" "" (.Values.mongodb | default dict) -}}
{{- $global := dig "externalMongodb" "url" "" (.Values.global | default dict) -}}
{{- default $global $own -}}
{{- end -}}

{{- define "qlp-lib.mongodbUrl" -}}
{{- $ext := include "qlp-lib.mongodbExternal" . -}}
{{- if $ext -}}
{{- $ext -}}
{{- else -}}
{{- printf "mongodb://%s-mongodb.%s.svc:27017/?directConnection=true" .Release.Name .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* Pod-level security context. Usage: include "qlp-lib.podSecurityContext" (dict "uid" 10001) */}}
{{- define "qlp-lib.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ default .uid .gid }}
fsGroup: {{ default .uid .gid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security context: non-root, read-only root, no privilege escalation, no capabilities. */}}
{{- define "qlp-lib.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ default .uid .gid }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Render a value that may contain template expressions (e.g. "{{ .Release.Name }}-gateway"). */}}
{{- define "qlp-lib.tplValue" -}}
{{- tpl (toString .value) .ctx -}}
{{- end -}}
