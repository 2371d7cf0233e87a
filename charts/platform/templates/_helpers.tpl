{{- define "platform.kafka.fullname" -}}
{{- printf "%s-kafka" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "platform.mongodb.fullname" -}}
{{- printf "%s-mongodb" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "platform.kafka.labels" -}}
{{ include "qlp-lib.labelsFor" (dict "ctx" . "name" "kafka" "component" "kafka" "version" .Values.kafka.image.tag) }}
{{- end -}}

{{- define "platform.mongodb.labels" -}}
{{ include "qlp-lib.labelsFor" (dict "ctx" . "name" "mongodb" "component" "mongodb" "version" .Values.mongodb.image.tag) }}
{{- end -}}

{{/* The topics job image: topics.image.*, else the gateway's image. */}}
{{- define "platform.topics.image" -}}
{{- $gw := .Values.gateway.image | default dict -}}
{{- $img := .Values.topics.image | default dict -}}
{{- $repo := default $gw.repository $img.repository -}}
{{- $tag := default (default .Chart.AppVersion $gw.tag) $img.tag -}}
{{- $digest := default $gw.digest $img.digest -}}
{{- $ref := printf "%s:%s" (required "topics.image.repository or gateway.image.repository is required" $repo) $tag -}}
{{- if $digest }}{{ $ref = printf "%s@%s" $ref $digest }}{{ end -}}
{{- $ref -}}
{{- end -}}
