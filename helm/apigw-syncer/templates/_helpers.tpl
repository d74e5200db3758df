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

{{/*
A Service's address families: those nginx listens on (nginx.ipFamilies), the first one primary.
Two families require dual-stack: nginx serves both, and a Service that quietly fell back to one
(PreferDualStack) would leave the other family's clients without an address.
*/}}
{{- define "apigw-syncer.serviceIpFamilies" -}}
ipFamilyPolicy: {{ ternary "RequireDualStack" "SingleStack" (gt (len .Values.nginx.ipFamilies) 1) }}
ipFamilies:
{{- toYaml .Values.nginx.ipFamilies | nindent 2 }}
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
Image reference: [registry/]repository, then @digest when a digest pins it, else :tag.
Argument: an image values map.
*/}}
{{- define "apigw-syncer.image" -}}
{{- $repository := .repository }}
{{- if .registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .registry) .repository }}
{{- end }}
{{- if .digest }}
{{- printf "%s@%s" $repository .digest }}
{{- else }}
{{- printf "%s:%s" $repository (toString .tag) }}
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
{{- with $s.probeTls }}
{{- if .secretName }}
{{- /* The Secret's files, where apigw-syncer.sidecarVolumeMounts puts them: probes go https. */}}
{{- if and (hasKey $config "probeScheme") (ne $config.probeScheme "https") }}
{{- fail "syncer.probeTls.secretName makes probes https: remove syncer.config.probeScheme or set it to https" }}
{{- end }}
{{- $_ := set $config "probeScheme" "https" }}
{{- $dir := include "apigw-syncer.probeTlsDir" $ }}
{{- if .caKey }}{{ $_ := set $config "probeCaFile" (printf "%s/%s" $dir .caKey) }}{{ end }}
{{- if and .certKey .keyKey }}
{{- $_ := set $config "probeCertFile" (printf "%s/%s" $dir .certKey) }}
{{- $_ := set $config "probeKeyFile" (printf "%s/%s" $dir .keyKey) }}
{{- end }}
{{- if .serverName }}{{ $_ := set $config "probeServername" .serverName }}{{ end }}
{{- end }}
{{- end }}
{{- if include "apigw-syncer.sidecarUsesChartTls" . }}
{{- /* The chart's client certificate (tls): mutual TLS with every peer's probe server. */}}
{{- if and (hasKey $config "probeScheme") (ne $config.probeScheme "https") }}
{{- fail "tls.enabled makes probes https: remove syncer.config.probeScheme, or set tls.enabled=false to probe in clear text" }}
{{- end }}
{{- $dir := include "apigw-syncer.tlsClientDir" . }}
{{- $_ := set $config "probeScheme" "https" }}
{{- $_ := set $config "probeCaFile" (printf "%s/ca.crt" $dir) }}
{{- $_ := set $config "probeCertFile" (printf "%s/tls.crt" $dir) }}
{{- $_ := set $config "probeKeyFile" (printf "%s/tls.key" $dir) }}
{{- /* Peers are probed by IP: check the name the chart's server certificate carries. */}}
{{- if not (hasKey $config "probeServername") }}
{{- $_ := set $config "probeServername" (include "apigw-syncer.tlsServerName" .) }}
{{- end }}
{{- end }}
{{- if and (not (hasKey $config "probePort")) .Values.nginx }}
{{- /* Peers' nginx serves the probe on its own server (nginx.probePort), not the sidecar's default 80. */}}
{{- if .Values.nginx.probePort }}
{{- $_ := set $config "probePort" .Values.nginx.probePort }}
{{- end }}
{{- end }}
{{- with $s.canary }}
{{- if .enabled }}
{{- /* syncer.config's canary keys, when given, win over these. */}}
{{- if not (hasKey $config "canaryIntervalMs") }}{{ $_ := set $config "canaryIntervalMs" (default 10000 .intervalMs) }}{{ end }}
{{- if and .timeoutMs (not (hasKey $config "canaryTimeoutMs")) }}{{ $_ := set $config "canaryTimeoutMs" .timeoutMs }}{{ end }}
{{- if not (hasKey $config "canaryUrl") }}
{{- /* This pod's token API: nginx's loopback API server (nginx.apiPort), the token zone's keyvals. */}}
{{- $apiPort := 8002 }}
{{- if and $.Values.nginx $.Values.nginx.apiPort }}{{ $apiPort = int $.Values.nginx.apiPort }}{{ end }}
{{- $_ := set $config "canaryUrl" (printf "http://127.0.0.1:%d/api/9/http/keyvals/apigw_tokens" $apiPort) }}
{{- end }}
{{- end }}
{{- end }}
{{- $canaryMs := int (default 0 $config.canaryIntervalMs) }}
{{- if and (gt $canaryMs 0) (ge (int (default 5000 $config.canaryTimeoutMs)) $canaryMs) }}
{{- fail (printf "the canary's timeout (%d ms) must be less than its interval (%d ms), so runs never overlap: syncer.canary.timeoutMs/intervalMs (or syncer.config.canaryTimeoutMs/canaryIntervalMs)" (int (default 5000 $config.canaryTimeoutMs)) $canaryMs) }}
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
{{- with include "apigw-syncer.maxOldSpaceMiB" $s }}
# V8's heap cap, from the container's memory limit: a burst is collected, never OOM-killed.
- name: NODE_OPTIONS
  value: {{ printf "--max-old-space-size=%s" . | quote }}
{{- end }}
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
  {{- if not $s.nativeSidecar }}
  lifecycle:
    # Kubernetes runs both containers' preStop hooks at once and sends SIGTERM to each when its
    # own hook ends. nginx keeps serving through its preStop and then finishes its requests;
    # waiting as long keeps the syncer answering every check nginx still asks. (A native
    # sidecar is stopped after nginx by Kubernetes itself.) exec sleep, not the sleep action:
    # that needs Kubernetes 1.30, the chart supports 1.25.
    preStop:
      exec:
        command: ["sleep", {{ include "apigw-syncer.syncerPreStopSeconds" . | quote }}]
  {{- end }}
  securityContext:
    {{- include "apigw-syncer.containerSecurityContext" (dict "ctx" $s.securityContext "ocp4" .Values.ocp4) | nindent 4 }}
  {{- with include "apigw-syncer.sidecarVolumeMounts" . }}
  volumeMounts:
    {{- . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
How long the syncer's preStop waits: syncer.preStopSeconds, or nginx's serving window —
nginx.preStopSleepSeconds, then the quit during which nginx finishes its requests, each waiting
at most the hard deadline for its check (plus a second). It must end within the grace period.
*/}}
{{- define "apigw-syncer.syncerPreStopSeconds" -}}
{{- $s := .Values.syncer }}
{{- $seconds := $s.preStopSeconds }}
{{- if kindIs "invalid" $seconds }}
{{- $hardMs := int (default 1500 (default dict $s.config).hardTimeoutMs) }}
{{- $nginxSleep := 0 }}
{{- if .Values.nginx }}{{ $nginxSleep = int (default 0 .Values.nginx.preStopSleepSeconds) }}{{ end }}
{{- $seconds = add $nginxSleep (div (add $hardMs 999) 1000) 1 }}
{{- end }}
{{- $grace := int (default 30 .Values.terminationGracePeriodSeconds) }}
{{- if ge (int $seconds) $grace }}
{{- fail (printf "the syncer's preStop (%d s) must end within terminationGracePeriodSeconds (%d s): raise the grace period or lower syncer.preStopSeconds" (int $seconds) $grace) }}
{{- end }}
{{- int $seconds }}
{{- end }}

{{/* --max-old-space-size in MiB: syncer.maxOldSpaceMiB, or half of limits.memory given in Mi or Gi; empty otherwise. */}}
{{- define "apigw-syncer.maxOldSpaceMiB" -}}
{{- if not (kindIs "invalid" .maxOldSpaceMiB) }}
{{- int .maxOldSpaceMiB }}
{{- else }}
{{- with include "apigw-syncer.memoryLimitMiB" . }}
{{- div (int .) 2 }}
{{- end }}
{{- end }}
{{- end }}

{{/* The syncer's resources.limits.memory in MiB when given in Mi or Gi; empty otherwise. Context: .Values.syncer. */}}
{{- define "apigw-syncer.memoryLimitMiB" -}}
{{- $limit := toString (dig "limits" "memory" "" (default dict .resources)) }}
{{- if regexMatch "^[0-9]+Mi$" $limit }}
{{- trimSuffix "Mi" $limit | int }}
{{- else if regexMatch "^[0-9]+Gi$" $limit }}
{{- mul (trimSuffix "Gi" $limit | int) 1024 }}
{{- end }}
{{- end }}

{{- define "apigw-syncer.probeTlsDir" -}}/etc/apigw-syncer/probe-tls{{- end }}

{{/*
The syncer's volume mounts: the projected ServiceAccount token where client libraries look for
it (only when it calls the API), and the probe TLS Secret. A parent chart that includes
apigw-syncer.sidecarContainer adds apigw-syncer.sidecarVolumes to its pod's volumes.
*/}}
{{- define "apigw-syncer.sidecarVolumeMounts" -}}
{{- if include "apigw-syncer.needsApi" . }}
- name: syncer-api-token
  mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  readOnly: true
{{- end }}
{{- if .Values.syncer.probeTls.secretName }}
- name: syncer-probe-tls
  mountPath: {{ include "apigw-syncer.probeTlsDir" . }}
  readOnly: true
{{- else if include "apigw-syncer.sidecarUsesChartTls" . }}
- name: tls-client
  mountPath: {{ include "apigw-syncer.tlsClientDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
The volumes behind apigw-syncer.sidecarVolumeMounts. The token is the one the kubelet would
automount (a bound, expiring ServiceAccount token, the cluster CA, the namespace), given to the
syncer alone.
*/}}
{{- define "apigw-syncer.sidecarVolumes" -}}
{{- if include "apigw-syncer.needsApi" . }}
- name: syncer-api-token
  projected:
    defaultMode: 0444
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                apiVersion: v1
                fieldPath: metadata.namespace
{{- end }}
{{- if and .Values.syncer.enabled .Values.syncer.probeTls.secretName }}
- name: syncer-probe-tls
  secret:
    secretName: {{ .Values.syncer.probeTls.secretName }}
    defaultMode: 0444
{{- else if include "apigw-syncer.sidecarUsesChartTls" . }}
{{ include "apigw-syncer.tlsVolume" (dict "name" "tls-client" "secretName" (include "apigw-syncer.tlsSecretNames" . | fromJson).client) }}
{{- end }}
{{- end }}
