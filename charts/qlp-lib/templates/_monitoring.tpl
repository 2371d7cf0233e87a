{{/*
Observability of one service, each part optional:

  monitoring.serviceMonitor.enabled  (or global.monitoring.serviceMonitor)  ServiceMonitor
  monitoring.prometheusRule.enabled  (or global.monitoring.prometheusRule)  PrometheusRule
  monitoring.dashboard.enabled       (or global.monitoring.dashboards)      Grafana dashboard ConfigMap

ServiceMonitor and PrometheusRule are prometheus-operator resources
(monitoring.coreos.com/v1): the CRDs must be installed. The ServiceMonitor keeps the
metrics' own `service` label (honorLabels); the operator adds `namespace` and
`job=<release>-<service>`, which the rules select on. The workload alerts read
kube-state-metrics (kube_deployment_* / kube_daemonset_*). Every alert names its
runbook (docs/runbooks/<alert>.md).
*/}}
{{- define "qlp-lib.monitoringOn" -}}
{{- $ctx := .ctx -}}
{{- $own := dig .key "enabled" false ($ctx.Values.monitoring | default dict) -}}
{{- $global := dig "monitoring" .globalKey false ($ctx.Values.global | default dict) -}}
{{- if or $own $global -}}true{{- end -}}
{{- end -}}

{{- define "qlp-lib.servicemonitor" -}}
{{- $sm := dig "serviceMonitor" dict (.Values.monitoring | default dict) -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "qlp-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "qlp-lib.labels" . | nindent 4 }}
    {{- with $sm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "qlp-lib.selectorLabels" . | nindent 6 }}
  namespaceSelector:
    matchNames: [{{ .Release.Namespace }}]
  endpoints:
    - port: http
      path: {{ dig "path" "/metrics" (.Values.metrics | default dict) }}
      interval: {{ default "30s" $sm.interval }}
      honorLabels: true
{{- end -}}

{{- define "qlp-lib.prometheusrule" -}}
{{- $r := dig "prometheusRule" dict (.Values.monitoring | default dict) -}}
{{- $svc := include "qlp-lib.serviceName" . -}}
{{- $full := include "qlp-lib.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $book := trimSuffix "/" (default "https://github.com/quantumlayer/qlp/blob/main/docs/runbooks" $r.runbookBaseUrl) -}}
{{- $sel := printf "namespace=%q, service=%q" $ns $svc -}}
{{- $ds := eq (default "deployment" .Values.workload) "daemonset" -}}
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: {{ $full }}
  namespace: {{ $ns }}
  labels:
    {{- include "qlp-lib.labels" . | nindent 4 }}
    {{- with $r.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  groups:
    - name: qlp-{{ $svc }}.availability
      rules:
        - alert: QLPServiceDown
          {{- if $ds }}
          expr: kube_daemonset_status_number_available{namespace={{ $ns | quote }}, daemonset={{ $full | quote }}} == 0 or max by (namespace, job) (up{namespace={{ $ns | quote }}, job={{ $full | quote }}}) == 0
          {{- else }}
          expr: kube_deployment_status_replicas_available{namespace={{ $ns | quote }}, deployment={{ $full | quote }}} == 0 or max by (namespace, job) (up{namespace={{ $ns | quote }}, job={{ $full | quote }}}) == 0
          {{- end }}
          for: {{ default "2m" $r.downFor }}
          labels: {severity: critical, service: {{ $svc }}}
          annotations:
            summary: {{ printf "%s has no available pod or no scrapeable target" $svc | quote }}
            description: "No {{ $full }} pod is available, or Prometheus cannot scrape any of them, for {{ default "2m" $r.downFor }}."
            runbook_url: {{ printf "%s/service-down.md" $book }}
        - alert: QLPReadinessFailing
          {{- if $ds }}
          expr: kube_daemonset_status_number_unavailable{namespace={{ $ns | quote }}, daemonset={{ $full | quote }}} > 0
          {{- else }}
          expr: kube_deployment_status_replicas_unavailable{namespace={{ $ns | quote }}, deployment={{ $full | quote }}} > 0
          {{- end }}
          for: {{ default "10m" $r.notReadyFor }}
          labels: {severity: warning, service: {{ $svc }}}
          annotations:
            summary: {{ printf "%s pods fail their readiness probe (GET /readyz)" $svc | quote }}
            description: "{{ "{{" }} $value {{ "}}" }} {{ $full }} pods have not been ready for {{ default "10m" $r.notReadyFor }}."
            runbook_url: {{ printf "%s/not-ready.md" $book }}
    {{- if not $ds }}
    - name: qlp-{{ $svc }}.slo
      rules:
        - alert: QLPRouteErrorRateHigh
          expr: (sum by (service, method, route) (rate(qlp_http_requests_total{ {{- $sel }}, status=~"5.."}[5m])) / sum by (service, method, route) (rate(qlp_http_requests_total{ {{- $sel }}}[5m]))) > {{ default 0.01 $r.errorRatio }} and sum by (service, method, route) (rate(qlp_http_requests_total{ {{- $sel }}}[5m])) > {{ default 0.05 $r.minRequestRate }}
          for: {{ default "10m" $r.sloFor }}
          labels: {severity: warning, service: {{ $svc }}}
          annotations:
            summary: "{{ $svc }} {{ "{{" }} $labels.method {{ "}}" }} {{ "{{" }} $labels.route {{ "}}" }} answers 5xx above the SLO"
            description: "{{ "{{" }} $value | humanizePercentage {{ "}}" }} of requests failed with 5xx over 5m (SLO: at most {{ default 0.01 $r.errorRatio }})."
            runbook_url: {{ printf "%s/route-error-rate.md" $book }}
        - alert: QLPRouteLatencyP99High
          expr: histogram_quantile(0.99, sum by (service, method, route, le) (rate(qlp_http_request_duration_seconds_bucket{ {{- $sel }}}[5m]))) > {{ default 1 $r.latencyP99Seconds }} and sum by (service, method, route) (rate(qlp_http_request_duration_seconds_count{ {{- $sel }}}[5m])) > {{ default 0.05 $r.minRequestRate }}
          for: {{ default "10m" $r.sloFor }}
          labels: {severity: warning, service: {{ $svc }}}
          annotations:
            summary: "{{ $svc }} {{ "{{" }} $labels.method {{ "}}" }} {{ "{{" }} $labels.route {{ "}}" }} p99 latency above the SLO"
            description: "p99 is {{ "{{" }} $value | humanizeDuration {{ "}}" }} over 5m (SLO: {{ default 1 $r.latencyP99Seconds }}s)."
            runbook_url: {{ printf "%s/route-latency.md" $book }}
    - name: qlp-{{ $svc }}.events
      rules:
        - alert: QLPDeadLettersGrowing
          expr: sum by (service, group) (increase(qlp_events_dead_lettered_total{ {{- $sel }}}[15m])) > {{ default 0 $r.deadLettersPer15m }}
          labels: {severity: warning, service: {{ $svc }}}
          annotations:
            summary: "{{ $svc }} consumer group {{ "{{" }} $labels.group {{ "}}" }} dead-letters events"
            description: "{{ "{{" }} $value {{ "}}" }} events went to qlp.dlq.{{ "{{" }} $labels.group {{ "}}" }} in 15m."
            runbook_url: {{ printf "%s/dead-letters.md" $book }}
        - alert: QLPOutboxStuck
          expr: max by (service, collection) (qlp_outbox_stuck_documents{ {{- $sel }}}) > 0
          for: {{ default "5m" $r.outboxStuckFor }}
          labels: {severity: warning, service: {{ $svc }}}
          annotations:
            summary: "{{ $svc }} has outbox events the relay cannot publish ({{ "{{" }} $labels.collection {{ "}}" }})"
            description: "{{ "{{" }} $value {{ "}}" }} documents in {{ "{{" }} $labels.collection {{ "}}" }} are marked stuck: their events, and the later events of the same documents, are not published."
            runbook_url: {{ printf "%s/outbox-backlog.md" $book }}
        - alert: QLPOutboxBacklogOld
          expr: max by (service, collection) (qlp_outbox_oldest_pending_age_seconds{ {{- $sel }}}) > {{ default 300 $r.outboxBacklogAgeSeconds }}
          for: {{ default "5m" $r.outboxBacklogFor }}
          labels: {severity: warning, service: {{ $svc }}}
          annotations:
            summary: "{{ $svc }} outbox events wait too long to be published ({{ "{{" }} $labels.collection {{ "}}" }})"
            description: "The oldest waiting event in {{ "{{" }} $labels.collection {{ "}}" }} was staged {{ "{{" }} $value | humanizeDuration {{ "}}" }} ago: the relay is not publishing (broker unreachable, relay stopped or too slow)."
            runbook_url: {{ printf "%s/outbox-backlog.md" $book }}
        - alert: QLPConsumerRetryingTransientFailures
          expr: sum by (service, group) (rate(qlp_consumer_transient_retries_total{ {{- $sel }}}[5m])) > {{ default 0.5 $r.transientRetriesPerSecond }}
          for: {{ default "10m" $r.sloFor }}
          labels: {severity: warning, service: {{ $svc }}}
          annotations:
            summary: "{{ $svc }} consumer group {{ "{{" }} $labels.group {{ "}}" }} keeps retrying infrastructure failures"
            description: "{{ "{{" }} $value | humanize {{ "}}" }} retries per second over 5m: a dependency (MongoDB, Kafka, another service) fails; the group waits and its lag grows."
            runbook_url: {{ printf "%s/consumer-lag.md" $book }}
    {{- end }}
{{- end -}}
