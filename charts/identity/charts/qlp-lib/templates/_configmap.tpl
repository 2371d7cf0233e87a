{{/*
ConfigMap with the service's environment. Every key becomes an environment
variable through envFrom:
  - KAFKA_BOOTSTRAP_SERVERS / MONGODB_URL (unprefixed: qlp_kit settings read them
    under those names) unless the chart turns kafka/mongodb off,
  - <PREFIX>SERVICE_NAME, <PREFIX>HTTP_HOST, <PREFIX>HTTP_PORT for the settings class,
  - every key of .Values.env with the service prefix (LOG_FORMAT -> QLP_IDENTITY_LOG_FORMAT),
  - every key of .Values.extraEnv as written.
Values may contain template expressions ("http://{{ .Release.Name }}-identity:8000").
Secrets never go here: list Secrets in envFromSecrets (they override these keys).
*/}}
{{- define "qlp-lib.configmap.data" -}}
{{- $prefix := include "qlp-lib.envPrefix" . -}}
{{- $kafka := .Values.kafka | default dict -}}
{{- $mongodb := .Values.mongodb | default dict -}}
{{- if (hasKey $kafka "enabled" | ternary $kafka.enabled true) }}
KAFKA_BOOTSTRAP_SERVERS: {{ include "qlp-lib.kafkaBootstrapServers" . | quote }}
{{- end }}
{{- if (hasKey $mongodb "enabled" | ternary $mongodb.enabled true) }}
MONGODB_URL: {{ include "qlp-lib.mongodbUrl" . | quote }}
{{- with $mongodb.database }}
{{ $prefix }}MONGODB_DATABASE: {{ . | quote }}
{{- end }}
{{- end }}
{{ $prefix }}SERVICE_NAME: {{ include "qlp-lib.serviceName" . | quote }}
{{ $prefix }}HTTP_HOST: "0.0.0.0"
{{ $prefix }}HTTP_PORT: {{ default 8000 .Values.containerPort | quote }}
QLP_LOG_LEVEL: {{ default "INFO" .Values.logLevel | quote }}
{{- $otel := dig "otel" "endpoint" "" (.Values.global | default dict) }}
{{- if $otel }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ $otel | quote }}
OTEL_SERVICE_NAME: {{ printf "qlp-%s" (include "qlp-lib.serviceName" .) | quote }}
{{- end }}
{{- range $key, $value := (.Values.env | default dict) }}
{{ printf "%s%s" $prefix $key }}: {{ include "qlp-lib.tplValue" (dict "value" $value "ctx" $) | quote }}
{{- end }}
{{- range $key, $value := (.Values.extraEnv | default dict) }}
{{ $key }}: {{ include "qlp-lib.tplValue" (dict "value" $value "ctx" $) | quote }}
{{- end }}
{{- end -}}

{{- define "qlp-lib.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "qlp-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "qlp-lib.labels" . | nindent 4 }}
data:
  {{- include "qlp-lib.configmap.data" . | trim | nindent 2 }}
{{- end -}}
