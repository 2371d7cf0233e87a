{{/*
The service's MongoDB indexes as a Helm hook Job, in the service's own image:

    python -m qlp_kit.indexes ensure <serviceName>

creates what the service's startup would (definition indexes + outbox index) and is
idempotent. It runs before every upgrade (pre-upgrade), so the new pods never start
against missing indexes. On a first install it runs pre-install when MongoDB is
external; with the umbrella's in-cluster MongoDB, which does not exist before the
install, it runs post-install (the first pods also create the indexes at startup,
before they report ready).

The Job gets the service's environment inline (the ConfigMap is a release object:
it does not exist yet before an install, and is the old one before an upgrade) and
the same Secrets through envFrom.
*/}}
{{- define "qlp-lib.indexesHook" -}}
{{- if include "qlp-lib.mongodbExternal" . -}}
pre-install,pre-upgrade
{{- else -}}
post-install,pre-upgrade
{{- end -}}
{{- end -}}

{{- define "qlp-lib.indexesJob" -}}
{{- $ix := .Values.indexes | default dict -}}
{{- $name := printf "%s-indexes" (include "qlp-lib.serviceName" .) -}}
{{- $env := list -}}
{{- range $key, $value := (include "qlp-lib.configmap.data" . | fromYaml) -}}
{{- $env = append $env (dict "name" $key "value" (toString $value)) -}}
{{- end -}}
{{- $envFrom := list -}}
{{- range (.Values.envFromSecrets | default list) -}}
{{- $envFrom = append $envFrom (dict "secretRef" (dict "name" (tpl .name $) "optional" (.optional | default false))) -}}
{{- end -}}
{{- include "qlp-lib.job" (dict
      "ctx" .
      "name" $name
      "image" (include "qlp-lib.image" .)
      "version" (include "qlp-lib.imageTag" .)
      "imagePullSecrets" .Values.imagePullSecrets
      "pullPolicy" (dig "pullPolicy" "IfNotPresent" (.Values.image | default dict))
      "command" (list "python" "-m" "qlp_kit.indexes")
      "args" (list "ensure" (include "qlp-lib.serviceName" .))
      "env" $env
      "envFrom" $envFrom
      "hook" (include "qlp-lib.indexesHook" .)
      "hookWeight" "-5"
      "backoffLimit" (default 10 $ix.backoffLimit)
      "activeDeadlineSeconds" (default 900 $ix.activeDeadlineSeconds)
      "resources" (required "indexes.resources is required" $ix.resources)
      "uid" (dig "runAsUser" 10001 (.Values.securityContext | default dict))) }}
{{- end -}}
