{{- define "qlp-lib.svc" -}}
{{- $svc := .Values.service | default dict -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "qlp-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "qlp-lib.labels" . | nindent 4 }}
  {{- with $svc.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ default "ClusterIP" $svc.type }}
  selector:
    {{- include "qlp-lib.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ default 8000 $svc.port }}
      targetPort: http
      protocol: TCP
      appProtocol: http
{{- end -}}

{{- define "qlp-lib.serviceaccount" -}}
{{- $sa := .Values.serviceAccount | default dict -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "qlp-lib.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "qlp-lib.labels" . | nindent 4 }}
  {{- with $sa.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ $sa.automount | default false }}
{{- end -}}

{{- define "qlp-lib.hpa" -}}
{{- $a := .Values.autoscaling | default dict -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "qlp-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "qlp-lib.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "qlp-lib.fullname" . }}
  minReplicas: {{ default 2 $a.minReplicas }}
  maxReplicas: {{ default 6 $a.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ default 75 $a.targetCPUUtilizationPercentage }}
    {{- with $a.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
  behavior:
    {{- with $a.behavior }}
    {{- toYaml . | nindent 4 }}
    {{- else }}
    scaleDown:
      stabilizationWindowSeconds: 300
      policies:
        - type: Pods
          value: 1
          periodSeconds: 60
    scaleUp:
      stabilizationWindowSeconds: 0
      policies:
        - type: Percent
          value: 100
          periodSeconds: 30
    {{- end }}
{{- end -}}

{{- define "qlp-lib.pdb" -}}
{{- $p := .Values.pdb | default dict -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "qlp-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "qlp-lib.labels" . | nindent 4 }}
spec:
  {{- if and (hasKey $p "minAvailable") (ne (toString $p.minAvailable) "") }}
  minAvailable: {{ $p.minAvailable }}
  {{- else }}
  maxUnavailable: {{ default 1 $p.maxUnavailable }}
  {{- end }}
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "qlp-lib.selectorLabels" . | nindent 6 }}
{{- end -}}

{{- define "qlp-lib.ingress" -}}
{{- $ing := .Values.ingress | default dict -}}
{{- $fullname := include "qlp-lib.fullname" . -}}
{{- $port := dig "port" 8000 (.Values.service | default dict) -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ $fullname }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "qlp-lib.labels" . | nindent 4 }}
  {{- with $ing.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with $ing.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- with $ing.tls }}
  tls:
    {{- range . }}
    - hosts:
        {{- toYaml .hosts | nindent 8 }}
      secretName: {{ .secretName }}
    {{- end }}
  {{- end }}
  rules:
    {{- range (required "ingress.hosts needs at least one host when ingress.enabled" $ing.hosts) }}
    - host: {{ .host | quote }}
      http:
        paths:
          {{- range (.paths | default (list (dict "path" "/" "pathType" "Prefix"))) }}
          - path: {{ .path }}
            pathType: {{ default "Prefix" .pathType }}
            backend:
              service:
                name: {{ $fullname }}
                port:
                  number: {{ $port }}
          {{- end }}
    {{- end }}
{{- end -}}

{{/*
Role + RoleBinding for the service account, in rbac.namespace (default: the
release namespace). The rules come from values (the scheduler's: batch/v1 Jobs,
pods and pods/log).
*/}}
{{- define "qlp-lib.rbac" -}}
{{- $r := .Values.rbac | default dict -}}
{{- $ns := default .Release.Namespace (tpl (toString (default "" $r.namespace)) .) -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ include "qlp-lib.fullname" . }}
  namespace: {{ $ns }}
  labels:
    {{- include "qlp-lib.labels" . | nindent 4 }}
rules:
  {{- toYaml (required "rbac.rules must list at least one rule when rbac.create" $r.rules) | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ include "qlp-lib.fullname" . }}
  namespace: {{ $ns }}
  labels:
    {{- include "qlp-lib.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ include "qlp-lib.fullname" . }}
subjects:
  - kind: ServiceAccount
    name: {{ include "qlp-lib.serviceAccountName" . }}
    namespace: {{ .Release.Namespace }}
{{- end -}}
