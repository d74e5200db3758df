{{/*
TLS between the replicas (values: tls). Two certificates from one CA, each in a
kubernetes.io/tls Secret with ca.crt (cert-manager's layout, whichever source fills them):
  server  names the peer Service; presented by the probe server and zone_sync's listener
  client  presented by the sidecar's probes and zone_sync's connections out
Both sides trust ca.crt. With tls.existingSecret one Secret plays both parts.
Mounted at <tls.mountPath>/server (nginx) and <tls.mountPath>/client (syncer; nginx with Plus).
*/}}

{{/* "true" when some path of this release carries tokens between replicas and TLS is on. */}}
{{- define "apigw-syncer.tlsEnabled" -}}
{{- if and .Values.tls .Values.tls.enabled (or .Values.syncer.enabled (eq (dig "flavor" "oss" (default dict .Values.nginx)) "plus")) }}true{{ end }}
{{- end }}

{{/* "certManager", "existingSecret" or "generated": where the certificates come from. */}}
{{- define "apigw-syncer.tlsSource" -}}
{{- $t := .Values.tls }}
{{- $issuer := dig "certManager" "issuerRef" "name" "" $t }}
{{- if and $issuer $t.existingSecret }}
{{- fail (printf "tls.certManager.issuerRef.name (%s) and tls.existingSecret (%s) are two sources for the same certificates: set one" $issuer $t.existingSecret) }}
{{- end }}
{{- if $issuer }}certManager{{ else if $t.existingSecret }}existingSecret{{ else }}generated{{ end }}
{{- end }}

{{/* The Secrets' names, as JSON {"server": …, "client": …}. */}}
{{- define "apigw-syncer.tlsSecretNames" -}}
{{- $fullname := include "apigw-syncer.fullname" . }}
{{- if eq (include "apigw-syncer.tlsSource" .) "existingSecret" }}
{{- toJson (dict "server" .Values.tls.existingSecret "client" .Values.tls.existingSecret) }}
{{- else }}
{{- toJson (dict "server" (printf "%s-tls-server" $fullname) "client" (printf "%s-tls-client" $fullname)) }}
{{- end }}
{{- end }}

{{/* The name in the server certificate that peers check: tls.serverName, else the peer Service's FQDN. */}}
{{- define "apigw-syncer.tlsServerName" -}}
{{- default (include "apigw-syncer.peerServiceFqdn" .) .Values.tls.serverName }}
{{- end }}

{{/* The server certificate's DNS names, as JSON: the checked name first, then the peer Service's shorter forms. */}}
{{- define "apigw-syncer.tlsDnsNames" -}}
{{- $svc := include "apigw-syncer.peerServiceName" . }}
{{- $names := list (include "apigw-syncer.tlsServerName" .) (include "apigw-syncer.peerServiceFqdn" .) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s" $svc .Release.Namespace) $svc }}
{{- toJson (uniq $names) }}
{{- end }}

{{- define "apigw-syncer.tlsServerDir" -}}
{{- printf "%s/server" (trimSuffix "/" .Values.tls.mountPath) }}
{{- end }}

{{- define "apigw-syncer.tlsClientDir" -}}
{{- printf "%s/client" (trimSuffix "/" .Values.tls.mountPath) }}
{{- end }}

{{/* "true" when the sidecar probes with the chart's client certificate (not syncer.probeTls's Secret). */}}
{{- define "apigw-syncer.sidecarUsesChartTls" -}}
{{- if and .Values.syncer.enabled (include "apigw-syncer.tlsEnabled" .) (not .Values.syncer.probeTls.secretName) }}true{{ end }}
{{- end }}

{{/* A Secret volume of the chart's TLS material. Arguments: dict "name" <volume> "secretName" <Secret>. */}}
{{- define "apigw-syncer.tlsVolume" -}}
- name: {{ .name }}
  secret:
    secretName: {{ .secretName }}
    defaultMode: 0444
{{- end }}

{{/*
The generated certificates' Secret data, as JSON {"server": {...}, "client": {...}}, base64
values: the Secrets already in the cluster when both exist, share one ca.crt and name the same
DNS names (so `helm upgrade` keeps them), else a new CA and two certificates signed by it. Without
a cluster (`helm template`, `--dry-run`) lookup finds nothing: every render generates afresh.
ECDSA P-256 keys: the handshake the peers pay on each new connection is the cheapest.
*/}}
{{- define "apigw-syncer.tlsGenerated" -}}
{{- $names := include "apigw-syncer.tlsSecretNames" . | fromJson }}
{{- $dns := include "apigw-syncer.tlsDnsNames" . | fromJsonArray }}
{{- $server := lookup "v1" "Secret" .Release.Namespace $names.server }}
{{- $client := lookup "v1" "Secret" .Release.Namespace $names.client }}
{{- $keys := list "ca.crt" "tls.crt" "tls.key" }}
{{- $keep := and $server $client }}
{{- range $s := list $server $client }}
{{- range $keys }}
{{- if not (dig "data" . "" $s) }}{{ $keep = false }}{{ end }}
{{- end }}
{{- end }}
{{- if $keep }}
{{- $keep = and (eq (dig "data" "ca.crt" "" $server) (dig "data" "ca.crt" "" $client)) (eq (dig "metadata" "annotations" "apigw-syncer.io/dns-names" "" $server) (join "," $dns)) }}
{{- end }}
{{- if $keep }}
{{- toJson (dict "server" (pick $server.data "ca.crt" "tls.crt" "tls.key") "client" (pick $client.data "ca.crt" "tls.crt" "tls.key")) }}
{{- else }}
{{- $fullname := include "apigw-syncer.fullname" . }}
{{- $days := int .Values.tls.generatedDays }}
{{- $ca := genCAWithKey (printf "%s-ca" $fullname) $days (genPrivateKey "ecdsa") }}
{{- $srv := genSignedCertWithKey (first $dns) nil $dns $days $ca (genPrivateKey "ecdsa") }}
{{- $cli := genSignedCertWithKey (printf "%s-client" $fullname) nil nil $days $ca (genPrivateKey "ecdsa") }}
{{- $secret := dict }}
{{- range $part, $cert := dict "server" $srv "client" $cli }}
{{- $_ := set $secret $part (dict "ca.crt" ($ca.Cert | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc)) }}
{{- end }}
{{- toJson $secret }}
{{- end }}
{{- end }}
