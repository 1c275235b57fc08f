{{/* Names and labels shared by every object. */}}
{{- define "sbops.fullname" -}}
{{- if contains "sbops" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-sbops" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sbops.labels" -}}
app.kubernetes.io/name: sbops
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "sbops.selector" -}}
app.kubernetes.io/name: sbops
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sbops.serviceAccountName" -}}
{{- default (include "sbops.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "sbops.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "sbops.credentialsSecret" -}}
{{- if .Values.credentials.existingSecret -}}
{{- .Values.credentials.existingSecret -}}
{{- else if .Values.credentials.content -}}
{{- printf "%s-credentials" (include "sbops.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "sbops.settingsSecret" -}}
{{- if .Values.existingSecretSettings -}}
{{- .Values.existingSecretSettings -}}
{{- else if .Values.secretSettings -}}
{{- printf "%s-settings" (include "sbops.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The agent's layers: netpath only when the agent may enter pods' network namespaces. */}}
{{- define "sbops.agentLayers" -}}
{{- $layers := list -}}
{{- range (splitList "," .Values.agent.layers) -}}
{{- $layer := trim . -}}
{{- if or $.Values.agent.netpath (ne $layer "netpath") -}}
{{- $layers = append $layers $layer -}}
{{- end -}}
{{- end -}}
{{- join "," $layers -}}
{{- end -}}

{{/*
The exporter container of either part. Arguments: dict "root" $ "part" "agent"|"cluster" "values" <part values>
"layers" <layers> "listen" <host:port>.
*/}}
{{- define "sbops.exporterContainer" -}}
{{- $root := .root -}}
- name: exporter
  image: {{ include "sbops.image" $root | quote }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  args:
    - exporter
    - --listen={{ .listen }}
    - --layers={{ .layers }}
    - --config=/etc/sbops/config/config.yaml
    {{- if include "sbops.credentialsSecret" $root }}
    - --credentials=/etc/sbops/credentials/stackbill-credentials.txt
    {{- end }}
    {{- if $root.Values.webConfig.existingSecret }}
    - --web-config=/etc/sbops/web/web.yml
    {{- end }}
  env:
    - name: PYTHONUNBUFFERED
      value: "1"
    - name: HOST_IP
      valueFrom: {fieldRef: {fieldPath: status.hostIP}}
    - name: NODE_NAME
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
  {{- if include "sbops.settingsSecret" $root }}
  envFrom:
    - secretRef:
        name: {{ include "sbops.settingsSecret" $root }}
  {{- end }}
  ports:
    - name: metrics
      containerPort: {{ .values.port }}
      protocol: TCP
  {{- $scheme := ternary "HTTPS" "HTTP" (not (empty $root.Values.webConfig.existingSecret)) }}
  {{- if not $root.Values.webConfig.existingSecret }}
  readinessProbe:
    httpGet: {path: /-/healthy, port: metrics, scheme: {{ $scheme }}}
    periodSeconds: {{ .values.readinessPeriodSeconds }}
  livenessProbe:
    httpGet: {path: /-/healthy, port: metrics, scheme: {{ $scheme }}}
    periodSeconds: 60
    failureThreshold: 5
  {{- else }}
  readinessProbe:
    tcpSocket: {port: metrics}
    periodSeconds: {{ .values.readinessPeriodSeconds }}
  livenessProbe:
    tcpSocket: {port: metrics}
    periodSeconds: 60
    failureThreshold: 5
  {{- end }}
  resources:
    {{- toYaml .values.resources | nindent 4 }}
  volumeMounts:
    - {name: config, mountPath: /etc/sbops/config, readOnly: true}
    - {name: tmp, mountPath: /tmp}
    - {name: kube-api-access, mountPath: /var/run/secrets/kubernetes.io/serviceaccount, readOnly: true}
    {{- if include "sbops.credentialsSecret" $root }}
    - {name: credentials, mountPath: /etc/sbops/credentials, readOnly: true}
    {{- end }}
    {{- if $root.Values.webConfig.existingSecret }}
    - {name: web-config, mountPath: /etc/sbops/web, readOnly: true}
    {{- end }}
{{- end -}}

{{/* The volumes behind sbops.exporterContainer's mounts. Arguments: dict "root" $ "config" <ConfigMap name>. */}}
{{- define "sbops.exporterVolumes" -}}
{{- $root := .root -}}
- name: config
  configMap:
    name: {{ .config }}
- name: tmp
  emptyDir: {medium: Memory, sizeLimit: 16Mi}
# The ServiceAccount's token as Kubernetes 1.21+ mounts it by itself (a bound token the kubelet renews, the
# cluster's CA, the namespace), written out so it is there on any cluster (a 1.20 API server without the
# ServiceAccount admission plugin mounts nothing) and only in this container: sbops.kube re-reads the token
# when the kubelet renews it.
- name: kube-api-access
  projected:
    defaultMode: 0444
    sources:
      - serviceAccountToken: {path: token, expirationSeconds: 3607}
      - configMap:
          name: kube-root-ca.crt
          items: [{key: ca.crt, path: ca.crt}]
      - downwardAPI:
          items: [{path: namespace, fieldRef: {apiVersion: v1, fieldPath: metadata.namespace}}]
{{- if include "sbops.credentialsSecret" $root }}
- name: credentials
  secret:
    secretName: {{ include "sbops.credentialsSecret" $root }}
    defaultMode: 0400
    items:
      - {key: stackbill-credentials.txt, path: stackbill-credentials.txt}
{{- end }}
{{- if $root.Values.webConfig.existingSecret }}
- name: web-config
  secret:
    secretName: {{ $root.Values.webConfig.existingSecret }}
    defaultMode: 0400
{{- end }}
{{- end -}}

{{- define "sbops.scrapeAnnotations" -}}
{{- if .root.Values.prometheusAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- if .root.Values.webConfig.existingSecret }}
prometheus.io/scheme: https
{{- end }}
{{- end }}
{{- end -}}
