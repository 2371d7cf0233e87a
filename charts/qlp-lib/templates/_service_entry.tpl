{{/*
The one entry point of a service chart:

    {{ include "qlp-lib.service" . }}

renders, from the chart's values:
  ServiceAccount (serviceAccount.create), ConfigMap, Deployment or DaemonSet
  (workload), Service (service.enabled), HorizontalPodAutoscaler and
  PodDisruptionBudget (Deployments only; autoscaling.enabled, pdb.enabled),
  NetworkPolicy (networkPolicy.enabled), Ingress (ingress.enabled),
  Role + RoleBinding (rbac.create), the MongoDB index hook Job (indexes.enabled,
  when the service uses MongoDB), and optionally a ServiceMonitor, a PrometheusRule
  and a Grafana dashboard ConfigMap (monitoring.*, global.monitoring.*).
*/}}
{{- define "qlp-lib.service" -}}
{{- $workload := default "deployment" .Values.workload -}}
{{- if not (has $workload (list "deployment" "daemonset")) -}}
{{- fail (printf "workload must be deployment or daemonset, not %q" $workload) -}}
{{- end -}}
{{- $docs := list -}}
{{- if (hasKey (.Values.serviceAccount | default dict) "create" | ternary (.Values.serviceAccount | default dict).create true) -}}
{{- $docs = append $docs (include "qlp-lib.serviceaccount" .) -}}
{{- end -}}
{{- $docs = append $docs (include "qlp-lib.configmap" .) -}}
{{- if eq $workload "deployment" -}}
{{- $docs = append $docs (include "qlp-lib.deployment" .) -}}
{{- if dig "enabled" false (.Values.autoscaling | default dict) -}}
{{- $docs = append $docs (include "qlp-lib.hpa" .) -}}
{{- end -}}
{{- if dig "enabled" false (.Values.pdb | default dict) -}}
{{- $docs = append $docs (include "qlp-lib.pdb" .) -}}
{{- end -}}
{{- else -}}
{{- $docs = append $docs (include "qlp-lib.daemonset" .) -}}
{{- end -}}
{{- if dig "enabled" true (.Values.service | default dict) -}}
{{- $docs = append $docs (include "qlp-lib.svc" .) -}}
{{- end -}}
{{- if dig "enabled" false (.Values.networkPolicy | default dict) -}}
{{- $docs = append $docs (include "qlp-lib.networkpolicy" .) -}}
{{- end -}}
{{- if dig "enabled" false (.Values.ingress | default dict) -}}
{{- $docs = append $docs (include "qlp-lib.ingress" .) -}}
{{- end -}}
{{- if dig "create" false (.Values.rbac | default dict) -}}
{{- $docs = append $docs (include "qlp-lib.rbac" .) -}}
{{- end -}}
{{- if include "qlp-lib.monitoringOn" (dict "ctx" . "key" "serviceMonitor" "globalKey" "serviceMonitor") -}}
{{- $docs = append $docs (include "qlp-lib.servicemonitor" .) -}}
{{- end -}}
{{- if include "qlp-lib.monitoringOn" (dict "ctx" . "key" "prometheusRule" "globalKey" "prometheusRule") -}}
{{- $docs = append $docs (include "qlp-lib.prometheusrule" .) -}}
{{- end -}}
{{- if include "qlp-lib.monitoringOn" (dict "ctx" . "key" "dashboard" "globalKey" "dashboards") -}}
{{- $docs = append $docs (include "qlp-lib.dashboard" .) -}}
{{- end -}}
{{- $mongodb := .Values.mongodb | default dict -}}
{{- if and (dig "enabled" true (.Values.indexes | default dict)) (hasKey $mongodb "enabled" | ternary $mongodb.enabled true) -}}
{{- $docs = append $docs (include "qlp-lib.indexesJob" .) -}}
{{- end -}}
{{- join "\n---\n" $docs -}}
{{- end -}}
