{{/*
A Job, optionally a Helm hook, with the QLP pod conventions (non-root uid 10001,
read-only root, /tmp emptyDir, resources, labels).

Usage:
  {{ include "qlp-lib.job" (dict
       "ctx" $                              # root context
       "name" "topics"                      # object name: <release>-<name>
       "image" "ghcr.io/...:tag"            # full image reference
       "command" (list "qlp" "topics" "provision")
       "args" (list)                        # optional
       "env" (list (dict "name" "K" "value" "v"))   # optional
       "envFrom" (list ...)                 # optional, EnvFromSource list
       "hook" "post-install,post-upgrade"   # optional: makes it a Helm hook
       "hookWeight" "0"                     # optional
       "resources" (dict ...)               # required: requests and limits
       "backoffLimit" 6 "activeDeadlineSeconds" 600 "ttlSecondsAfterFinished" 3600
       "uid" 10001) }}
*/}}
{{- define "qlp-lib.job" -}}
{{- $ctx := .ctx -}}
{{- $uid := default 10001 .uid -}}
{{- $name := printf "%s-%s" $ctx.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- $version := default $ctx.Chart.AppVersion .version -}}
{{- $labels := include "qlp-lib.labelsFor" (dict "ctx" $ctx "name" .name "component" "job" "version" $version) -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ $name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
  {{- if .hook }}
  annotations:
    helm.sh/hook: {{ .hook }}
    helm.sh/hook-weight: {{ default "0" .hookWeight | quote }}
    helm.sh/hook-delete-policy: before-hook-creation
  {{- end }}
spec:
  backoffLimit: {{ default 6 .backoffLimit }}
  activeDeadlineSeconds: {{ default 600 .activeDeadlineSeconds }}
  ttlSecondsAfterFinished: {{ default 86400 .ttlSecondsAfterFinished }}
  template:
    metadata:
      labels:
        {{- $labels | nindent 8 }}
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      enableServiceLinks: false
      securityContext:
        {{- include "qlp-lib.podSecurityContext" (dict "uid" $uid) | nindent 8 }}
      {{- with .imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .name }}
          image: {{ .image | quote }}
          imagePullPolicy: {{ default "IfNotPresent" .pullPolicy }}
          command:
            {{- toYaml .command | nindent 12 }}
          {{- with .args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .envFrom }}
          envFrom:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .env }}
          env:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          resources:
            {{- toYaml (required "a Job needs resources" .resources) | nindent 12 }}
          securityContext:
            {{- include "qlp-lib.containerSecurityContext" (dict "uid" $uid) | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
{{- end -}}
