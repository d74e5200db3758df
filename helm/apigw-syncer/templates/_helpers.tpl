{{/*
Names and labels. The usual Helm pattern: <release>-<chart> unless the release name already
contains the chart name, cut to 52 characters so suffixes such as "-syncer" and "-peers"
keep every object name within the 63-character limit.
*/}}
{{- define "apigw-syncer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 52 | trimSuffix "-" }}
{{- end }}

{{- define "apigw-syncer.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "apigw-syncer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "apigw-syncer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "apigw-syncer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "apigw-syncer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: apigw
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The headless Service of all apigw pods (zone_sync peers; dns discovery). */}}
{{- define "apigw-syncer.peerServiceName" -}}
{{- printf "%s-peers" (include "apigw-syncer.fullname" .) }}
{{- end }}

{{- define "apigw-syncer.serviceAccountName" -}}
{{- default (printf "%s-syncer" (include "apigw-syncer.fullname" .)) .Values.serviceAccount.name }}
{{- end }}

{{/* "true" when the sidecar calls the Kubernetes API, so it needs the ServiceAccount and Role. */}}
{{- define "apigw-syncer.needsApi" -}}
{{- if and .Values.syncer.enabled (eq .Values.syncer.discovery "kubernetes") }}true{{ end }}
{{- end }}

{{/*
Image reference: repository@digest when a digest pins it, else repository:tag.
Argument: an image values map.
*/}}
{{- define "apigw-syncer.image" -}}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository (toString .tag) }}
{{- end }}
{{- end }}

{{/*
Pod security context. Under ocp4 the UID/GID/fsGroup fields are removed so OpenShift's
restricted SCC assigns them from the namespace's range; everything else stays.
*/}}
{{- define "apigw-syncer.podSecurityContext" -}}
{{- $ctx := deepCopy (default dict .Values.podSecurityContext) }}
{{- if .Values.ocp4 }}
{{- $ctx = omit $ctx "runAsUser" "runAsGroup" "fsGroup" "fsGroupChangePolicy" "supplementalGroups" }}
{{- end }}
{{- toYaml $ctx }}
{{- end }}

{{/*
Container security context: the same ocp4 rule, for a container's own securityContext map.
Arguments: dict "ctx" <securityContext map> "ocp4" <bool>.
*/}}
{{- define "apigw-syncer.containerSecurityContext" -}}
{{- $ctx := deepCopy (default dict .ctx) }}
{{- if .ocp4 }}
{{- $ctx = omit $ctx "runAsUser" "runAsGroup" }}
{{- end }}
{{- toYaml $ctx }}
{{- end }}

{{/*
The sidecar's environment: downward API identity, then one SYNCER_* variable per value that
is set. syncer.config keys map to SYNCER_<KEY_IN_SNAKE_CASE> (hardTimeoutMs →
SYNCER_HARD_TIMEOUT_MS); values.schema.json lists the allowed keys, so a typo fails there
instead of silently setting an unknown variable. Keys come out sorted, so renders are stable.
*/}}
{{- define "apigw-syncer.syncerEnv" -}}
{{- $s := .Values.syncer }}
{{- $config := deepCopy (default dict $s.config) }}
{{- $opsPort := int (default 9090 $s.opsPort) }}
{{- if hasKey $config "opsAddr" }}
{{- if not (hasSuffix (printf ":%d" $opsPort) (toString $config.opsAddr)) }}
{{- fail (printf "syncer.config.opsAddr (%s) must use syncer.opsPort (%d): the probes and the \"ops\" port use it" $config.opsAddr $opsPort) }}
{{- end }}
{{- else }}
{{- $_ := set $config "opsAddr" (printf "0.0.0.0:%d" $opsPort) }}
{{- end }}
{{- $discovery := default "kubernetes" $s.discovery }}
{{- if and (hasKey $config "peers") (ne $discovery "static") }}
{{- fail (printf "syncer.config.peers is only used with syncer.discovery=static (discovery is %s)" $discovery) }}
{{- end }}
{{- if and (eq $discovery "dns") (not (hasKey $config "dnsName")) .Release }}
{{- /* The chart's own headless Service lists every apigw pod: the natural DNS peer source. */}}
{{- $_ := set $config "dnsName" (printf "%s.%s.svc" (include "apigw-syncer.peerServiceName" .) .Release.Namespace) }}
{{- end }}
{{- if and (not (hasKey $config "probePort")) .Values.nginx }}
{{- /* Peers' nginx serves the probe on its own server (nginx.probePort), not the sidecar's default 80. */}}
{{- if .Values.nginx.probePort }}
{{- $_ := set $config "probePort" .Values.nginx.probePort }}
{{- end }}
{{- end -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: LOG_LEVEL
  value: {{ default "info" $s.logLevel | quote }}
- name: SYNCER_DISCOVERY
  value: {{ $discovery | quote }}
{{- range $key := keys $config | sortAlpha }}
{{- $value := get $config $key }}
{{- if not (kindIs "invalid" $value) }}
- name: {{ printf "SYNCER_%s" ($key | snakecase | upper) }}
  value: {{ include "apigw-syncer.envValue" $value | quote }}
{{- end }}
{{- end }}
{{- with $s.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
A value as env text. Numbers from values files arrive as float64, and Go would print
86400000 as "8.64e+07", which the sidecar rejects: whole numbers print as integers.
*/}}
{{- define "apigw-syncer.envValue" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}
{{- int64 . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/*
The apigw-syncer sidecar container, as one list item: put it under "containers:" or, with
syncer.nativeSidecar, under "initContainers:" (it then carries restartPolicy: Always).

Context: a chart context whose .Values has this chart's "syncer" (and optionally "ocp4" and
"nginx.probePort"). In this chart that is ".". A parent chart that has this chart as a
dependency passes the dependency's own context, which carries its defaults:
  {{- include "apigw-syncer.sidecarContainer" (index .Subcharts "apigw-syncer") | nindent 8 }}
*/}}
{{- define "apigw-syncer.sidecarContainer" -}}
{{- $s := .Values.syncer }}
{{- $opsPort := int (default 9090 $s.opsPort) -}}
- name: syncer
  image: {{ include "apigw-syncer.image" $s.image | quote }}
  imagePullPolicy: {{ default "IfNotPresent" $s.image.pullPolicy }}
  {{- if $s.nativeSidecar }}
  # Native sidecar: started before the app containers, stopped after them.
  restartPolicy: Always
  {{- end }}
  env:
    {{- include "apigw-syncer.syncerEnv" . | nindent 4 }}
  ports:
    - name: ops
      containerPort: {{ $opsPort }}
      protocol: TCP
  livenessProbe:
    httpGet:
      path: /healthz
      port: ops
    {{- with $s.livenessProbe }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: ops
    {{- with $s.readinessProbe }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $s.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "apigw-syncer.containerSecurityContext" (dict "ctx" $s.securityContext "ocp4" .Values.ocp4) | nindent 4 }}
{{- end }}
