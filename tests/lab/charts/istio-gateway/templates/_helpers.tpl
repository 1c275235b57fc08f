{{- define "istio-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "istio-gateway.image" -}}
{{ printf "%s/%s:%s" .Values.image.registry .Values.image.name .Values.image.tag }}
{{- end -}}

{{- define "istio-gateway.pullSecrets" -}}
{{- if .Values.imagePullSecrets }}
imagePullSecrets:
{{- range .Values.imagePullSecrets }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The gateway's route table, one "PREFIX ADDRESS PORT SERVICE" line per route. */}}
{{- define "istio-gateway.routes" -}}
{{- range .Values.routes }}
{{- if not (regexMatch "^10\\.43\\.[0-9]+\\.[0-9]+$" (toString .address)) }}
{{- fail (printf "route %s: address %v is not inside the service network 10.43.0.0/16" .prefix .address) }}
{{- end }}
{{ .prefix }} {{ .address }} {{ .port }} {{ .service }}
{{- end }}
{{- end -}}
