{{/* Labels every object of the chart carries besides app: <name> (the selector uses app only). */}}
{{- define "stackbill.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The environment every stand-in gets: the servers' addresses from the values, passwords from the Secret. */}}
{{- define "stackbill.env" -}}
- name: DOMAIN
  value: {{ .Values.global.domain | quote }}
- name: NFS_SERVER
  value: {{ .Values.global.nfs.server | quote }}
- name: NFS_PATH
  value: {{ .Values.global.nfs.path | quote }}
{{- range $key, $prefix := dict "mysql" "MYSQL" "mongo" "MONGO" "rabbitmq" "RABBITMQ" }}
{{- $server := index $.Values.global $key }}
- name: {{ $prefix }}_HOST
  value: {{ $server.ip | quote }}
- name: {{ $prefix }}_PORT
  value: {{ $server.port | quote }}
- name: {{ $prefix }}_USER
  value: {{ $server.username | quote }}
- name: {{ $prefix }}_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.credentialsSecret }}
      key: {{ $key }}-password
{{- end }}
{{- end -}}
