{{/*
The pod template shared by the Deployment and the DaemonSet variant.
Probes: GET /healthz (liveness) and /readyz (readiness) on the named port "http".
Security: non-root uid 10001, read-only root filesystem, no privilege escalation,
all capabilities dropped, RuntimeDefault seccomp; /tmp is an emptyDir.
*/}}
{{- define "qlp-lib.probe" -}}
{{- $p := .probe | default dict -}}
httpGet:
  path: {{ default .path $p.path }}
  port: http
initialDelaySeconds: {{ default .initialDelaySeconds $p.initialDelaySeconds }}
periodSeconds: {{ default 10 $p.periodSeconds }}
timeoutSeconds: {{ default 2 $p.timeoutSeconds }}
failureThreshold: {{ default 3 $p.failureThreshold }}
successThreshold: 1
{{- end -}}

{{- define "qlp-lib.resources" -}}
{{- $res := deepCopy (.Values.resources | default dict) -}}
{{- $gpu := .Values.gpu | default dict -}}
{{- if $gpu.enabled -}}
{{- $name := default "nvidia.com/gpu" $gpu.resourceName -}}
{{- $count := default 1 $gpu.count -}}
{{- $limits := $res.limits | default dict -}}
{{- $_ := set $limits $name $count -}}
{{- $_ := set $res "limits" $limits -}}
{{- end -}}
{{- toYaml $res -}}
{{- end -}}

{{- define "qlp-lib.podTemplate" -}}
{{- $sc := .Values.securityContext | default dict -}}
{{- $uid := default 10001 $sc.runAsUser -}}
{{- $gid := default $uid $sc.runAsGroup -}}
{{- $probes := .Values.probes | default dict -}}
{{- $metrics := .Values.metrics | default dict -}}
{{- $port := default 8000 .Values.containerPort -}}
{{- $tmp := .Values.tmpVolume | default dict -}}
{{- $sa := .Values.serviceAccount | default dict -}}
metadata:
  labels:
    {{- include "qlp-lib.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "qlp-lib.configmap" . | sha256sum }}
    kubectl.kubernetes.io/default-container: {{ include "qlp-lib.serviceName" . }}
    {{- if (hasKey $metrics "enabled" | ternary $metrics.enabled true) }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ $port | quote }}
    prometheus.io/path: {{ default "/metrics" $metrics.path | quote }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "qlp-lib.serviceAccountName" . }}
  automountServiceAccountToken: {{ $sa.automount | default false }}
  enableServiceLinks: false
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.runtimeClassName }}
  runtimeClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ default 30 .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- include "qlp-lib.podSecurityContext" (dict "uid" $uid "gid" $gid) | nindent 4 }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- tpl (toYaml .) $ | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ include "qlp-lib.serviceName" . }}
      image: {{ include "qlp-lib.image" . | quote }}
      imagePullPolicy: {{ dig "pullPolicy" "IfNotPresent" (.Values.image | default dict) }}
      command:
        {{- toYaml (.Values.command | default (list "python" "-m" "qlp_kit.serve")) | nindent 8 }}
      args:
        {{- toYaml (.Values.args | default (list (include "qlp-lib.serviceName" .))) | nindent 8 }}
      ports:
        - name: http
          containerPort: {{ $port }}
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "qlp-lib.fullname" . }}
        {{- range (.Values.envFromSecrets | default list) }}
        - secretRef:
            name: {{ tpl .name $ }}
            optional: {{ .optional | default false }}
        {{- end }}
      env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: NODE_NAME
          valueFrom:
            fieldRef:
              fieldPath: spec.nodeName
        {{- with .Values.extraEnvVars }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- $startup := $probes.startup | default dict }}
      {{- if (hasKey $startup "enabled" | ternary $startup.enabled true) }}
      startupProbe:
        {{- include "qlp-lib.probe" (dict "probe" (merge (deepCopy $startup) (dict "periodSeconds" 2 "failureThreshold" 30)) "path" "/healthz" "initialDelaySeconds" 0) | nindent 8 }}
      {{- end }}
      livenessProbe:
        {{- include "qlp-lib.probe" (dict "probe" $probes.liveness "path" "/healthz" "initialDelaySeconds" 0) | nindent 8 }}
      readinessProbe:
        {{- include "qlp-lib.probe" (dict "probe" $probes.readiness "path" "/readyz" "initialDelaySeconds" 0) | nindent 8 }}
      resources:
        {{- include "qlp-lib.resources" . | nindent 8 }}
      securityContext:
        {{- include "qlp-lib.containerSecurityContext" (dict "uid" $uid "gid" $gid) | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ default "256Mi" $tmp.sizeLimit }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{- define "qlp-lib.deployment" -}}
{{- $autoscaling := .Values.autoscaling | default dict -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "qlp-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "qlp-lib.labels" . | nindent 4 }}
spec:
  {{- if not $autoscaling.enabled }}
  replicas: {{ .Values.replicaCount | default 1 }}
  {{- end }}
  revisionHistoryLimit: {{ .Values.revisionHistoryLimit | default 5 }}
  selector:
    matchLabels:
      {{- include "qlp-lib.selectorLabels" . | nindent 6 }}
  strategy:
    {{- with .Values.updateStrategy }}
    {{- toYaml . | nindent 4 }}
    {{- else }}
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
    {{- end }}
  template:
    {{- include "qlp-lib.podTemplate" . | nindent 4 }}
{{- end -}}

{{/*
DaemonSet variant (the provider agent on a GPU node pool): one pod per GPU node,
selected by nodeSelector/tolerations from values, with nvidia.com/gpu limits
when gpu.enabled.
*/}}
{{- define "qlp-lib.daemonset" -}}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ include "qlp-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "qlp-lib.labels" . | nindent 4 }}
spec:
  revisionHistoryLimit: {{ .Values.revisionHistoryLimit | default 5 }}
  selector:
    matchLabels:
      {{- include "qlp-lib.selectorLabels" . | nindent 6 }}
  updateStrategy:
    {{- with .Values.updateStrategy }}
    {{- toYaml . | nindent 4 }}
    {{- else }}
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 1
    {{- end }}
  template:
    {{- include "qlp-lib.podTemplate" . | nindent 4 }}
{{- end -}}
