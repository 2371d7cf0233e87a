{{/*
A Grafana dashboard of one service as a ConfigMap (monitoring.dashboard.enabled or
global.monitoring.dashboards). The Grafana sidecar of kube-prometheus-stack loads
ConfigMaps labelled grafana_dashboard: "1" (monitoring.dashboard.labels).
Queries use the `datasource` variable and fixed 5m windows.
*/}}
{{- define "qlp-lib.dashboardPanel" -}}
- type: timeseries
  title: {{ .title | quote }}
  datasource: {type: prometheus, uid: "${datasource}"}
  gridPos: {"x": {{ .x }}, "y": {{ .y }}, "w": 12, "h": 8}
  fieldConfig: {defaults: {unit: {{ default "short" .unit | quote }}}, overrides: []}
  targets:
    {{- range $i, $t := .targets }}
    - refId: {{ index (list "A" "B" "C" "D") $i | quote }}
      expr: {{ $t.expr | squote }}
      legendFormat: {{ $t.legend | quote }}
    {{- end }}
{{- end -}}

{{- define "qlp-lib.dashboardModel" -}}
{{- $svc := include "qlp-lib.serviceName" . -}}
{{- $full := include "qlp-lib.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $sel := printf "namespace=\"%s\", service=\"%s\"" $ns $svc -}}
{{- $wl := printf "namespace=\"%s\", deployment=\"%s\"" $ns $full -}}
{{- $avail := printf "kube_deployment_status_replicas_available{%s}" $wl -}}
{{- $unavail := printf "kube_deployment_status_replicas_unavailable{%s}" $wl -}}
{{- if eq (default "deployment" .Values.workload) "daemonset" -}}
{{- $wl = printf "namespace=\"%s\", daemonset=\"%s\"" $ns $full -}}
{{- $avail = printf "kube_daemonset_status_number_available{%s}" $wl -}}
{{- $unavail = printf "kube_daemonset_status_number_unavailable{%s}" $wl -}}
{{- end -}}
uid: {{ printf "qlp-%s-%s" $ns $svc | trunc 40 | quote }}
title: {{ printf "QLP / %s" $svc | quote }}
tags: [qlp, {{ $svc | quote }}]
schemaVersion: 39
editable: false
time: {from: now-6h, to: now}
refresh: 30s
templating:
  list:
    - {name: datasource, type: datasource, query: prometheus, label: Data source}
panels:
{{- include "qlp-lib.dashboardPanel" (dict "title" "Pods available / unavailable" "x" 0 "y" 0 "targets" (list (dict "expr" $avail "legend" "available") (dict "expr" $unavail "legend" "unavailable"))) | nindent 2 }}
{{- include "qlp-lib.dashboardPanel" (dict "title" "Scrape targets up" "x" 12 "y" 0 "targets" (list (dict "expr" (printf "sum(up{namespace=\"%s\", job=\"%s\"})" $ns $full) "legend" "up"))) | nindent 2 }}
{{- if ne (default "deployment" .Values.workload) "daemonset" }}
{{- include "qlp-lib.dashboardPanel" (dict "title" "Requests per second by route" "unit" "reqps" "x" 0 "y" 8 "targets" (list (dict "expr" (printf "sum by (method, route) (rate(qlp_http_requests_total{%s}[5m]))" $sel) "legend" "{{method}} {{route}}"))) | nindent 2 }}
{{- include "qlp-lib.dashboardPanel" (dict "title" "5xx ratio by route" "unit" "percentunit" "x" 12 "y" 8 "targets" (list (dict "expr" (printf "sum by (method, route) (rate(qlp_http_requests_total{%s, status=~\"5..\"}[5m])) / sum by (method, route) (rate(qlp_http_requests_total{%s}[5m]))" $sel $sel) "legend" "{{method}} {{route}}"))) | nindent 2 }}
{{- include "qlp-lib.dashboardPanel" (dict "title" "p99 latency by route" "unit" "s" "x" 0 "y" 16 "targets" (list (dict "expr" (printf "histogram_quantile(0.99, sum by (method, route, le) (rate(qlp_http_request_duration_seconds_bucket{%s}[5m])))" $sel) "legend" "{{method}} {{route}}"))) | nindent 2 }}
{{- include "qlp-lib.dashboardPanel" (dict "title" "Events consumed by group and outcome" "unit" "ops" "x" 12 "y" 16 "targets" (list (dict "expr" (printf "sum by (group, outcome) (rate(qlp_events_consumed_total{%s}[5m]))" $sel) "legend" "{{group}} {{outcome}}"))) | nindent 2 }}
{{- include "qlp-lib.dashboardPanel" (dict "title" "Dead-lettered events (15m)" "x" 0 "y" 24 "targets" (list (dict "expr" (printf "sum by (group) (increase(qlp_events_dead_lettered_total{%s}[15m]))" $sel) "legend" "{{group}}"))) | nindent 2 }}
{{- include "qlp-lib.dashboardPanel" (dict "title" "Events published by the outbox relay" "unit" "ops" "x" 12 "y" 24 "targets" (list (dict "expr" (printf "sum by (topic) (rate(qlp_events_published_total{%s}[5m]))" $sel) "legend" "{{topic}}") (dict "expr" (printf "histogram_quantile(0.99, sum by (le) (rate(qlp_outbox_relay_batch_size_bucket{%s}[5m])))" $sel) "legend" "p99 batch size"))) | nindent 2 }}
{{- include "qlp-lib.dashboardPanel" (dict "title" "Stuck outbox documents" "x" 0 "y" 32 "targets" (list (dict "expr" (printf "max by (collection) (qlp_outbox_stuck_documents{%s})" $sel) "legend" "{{collection}}"))) | nindent 2 }}
{{- include "qlp-lib.dashboardPanel" (dict "title" "Consumer retries of transient failures" "unit" "ops" "x" 12 "y" 32 "targets" (list (dict "expr" (printf "sum by (group) (rate(qlp_consumer_transient_retries_total{%s}[5m]))" $sel) "legend" "{{group}}"))) | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "qlp-lib.dashboard" -}}
{{- $d := dig "dashboard" dict (.Values.monitoring | default dict) -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ printf "%s-dashboard" (include "qlp-lib.fullname" .) | trunc 63 | trimSuffix "-" }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "qlp-lib.labels" . | nindent 4 }}
    {{- toYaml (default (dict "grafana_dashboard" "1") $d.labels) | nindent 4 }}
data:
  {{ printf "qlp-%s.json" (include "qlp-lib.serviceName" .) }}: |-
    {{- include "qlp-lib.dashboardModel" . | fromYaml | toPrettyJson | nindent 4 }}
{{- end -}}
