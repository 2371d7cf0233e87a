{{/*
NetworkPolicy for a service's pods.
Ingress: on the http port from pods of the same release labelled
app.kubernetes.io/part-of=qlp (the gateway and the other services), or from
anywhere when networkPolicy.allowExternal (the gateway); plus the metrics
scraper's namespace; plus networkPolicy.extraIngress.
Egress: DNS; other QLP pods of the release on their http port (JWKS, gateway
routing); Kafka and MongoDB (the in-cluster pods, or the port anywhere when they
are external); plus networkPolicy.extraEgress.
*/}}
{{- define "qlp-lib.networkpolicy" -}}
{{- $np := .Values.networkPolicy | default dict -}}
{{- $kafka := .Values.kafka | default dict -}}
{{- $mongodb := .Values.mongodb | default dict -}}
{{- $release := .Release.Name -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "qlp-lib.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "qlp-lib.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "qlp-lib.selectorLabels" . | nindent 6 }}
  policyTypes:
    - Ingress
    - Egress
  ingress:
    {{- if $np.allowExternal }}
    - ports:
        - port: http
          protocol: TCP
    {{- else }}
    - from:
        - podSelector:
            matchLabels:
              app.kubernetes.io/part-of: qlp
              app.kubernetes.io/instance: {{ $release }}
      ports:
        - port: http
          protocol: TCP
    {{- end }}
    {{- with $np.metricsNamespaceSelector }}
    - from:
        - namespaceSelector:
            {{- toYaml . | nindent 12 }}
      ports:
        - port: http
          protocol: TCP
    {{- end }}
    {{- with $np.extraIngress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  egress:
    - ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    - to:
        - podSelector:
            matchLabels:
              app.kubernetes.io/part-of: qlp
              app.kubernetes.io/instance: {{ $release }}
      ports:
        - port: {{ default 8000 .Values.containerPort }}
          protocol: TCP
    {{- if (hasKey $kafka "enabled" | ternary $kafka.enabled true) }}
    {{- if include "qlp-lib.kafkaExternal" . }}
    - ports:
        {{- range ($np.kafkaPorts | default (list 9092)) }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
    {{- else }}
    - to:
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: kafka
              app.kubernetes.io/instance: {{ $release }}
      ports:
        - port: 9092
          protocol: TCP
    {{- end }}
    {{- end }}
    {{- if (hasKey $mongodb "enabled" | ternary $mongodb.enabled true) }}
    {{- if include "qlp-lib.mongodbExternal" . }}
    - ports:
        {{- range ($np.mongodbPorts | default (list 27017)) }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
    {{- else }}
    - to:
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: mongodb
              app.kubernetes.io/instance: {{ $release }}
      ports:
        - port: 27017
          protocol: TCP
    {{- end }}
    {{- end }}
    {{- with $np.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}
