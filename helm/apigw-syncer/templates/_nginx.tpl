{{/*
nginx configuration assembled from nginx-snippets/ (files/nginx-snippets is a symlink to it):
the snippets are shipped verbatim in the ConfigMap; only nginx.conf (below) and, for Plus,
the zone_sync stream block (its resolver and Service name are per cluster) are rendered.

Layout in the pod (test/helm.test.ts runs nginx on exactly this layout):
  <confDir>/nginx.conf                       this template
  <confDir>/apigw-syncer/common/*.conf       nginx-snippets/common
  <confDir>/apigw-syncer/<flavor>/*.conf     nginx-snippets/<flavor>
  <confDir>/apigw-syncer/render-pod-conf.sh  writes <runDir>/apigw-pod.conf at container start
  <confDir>/conf.d/*.conf                    nginx.extraConfig
  <confDir>/html/index.html                  default content of the example API location
  <runDir>/                                  emptyDir: per-pod file, pid, temp
Relative include paths resolve against <confDir>, the directory of the -c file.
*/}}

{{- define "apigw-syncer.nginxRunDir" -}}
{{- default "/run/apigw-syncer" .Values.nginx.runDir }}
{{- end }}

{{- define "apigw-syncer.nginxConfDir" -}}
{{- default "/etc/apigw" .Values.nginx.confDir }}
{{- end }}

{{/* The snippet files the selected flavor needs, as ConfigMap key → path under confDir. */}}
{{- define "apigw-syncer.nginxSnippetFiles" -}}
{{- $files := dict }}
{{- range $path, $_ := .Files.Glob "files/nginx-snippets/common/*.conf" }}
{{- $_ := set $files (printf "apigw-syncer/common/%s" (base $path)) $path }}
{{- end }}
{{- range $path, $_ := .Files.Glob (printf "files/nginx-snippets/%s/token-store-*.conf" .Values.nginx.flavor) }}
{{- $_ := set $files (printf "apigw-syncer/%s/%s" $.Values.nginx.flavor (base $path)) $path }}
{{- end }}
{{- $_ := set $files "apigw-syncer/render-pod-conf.sh" "files/nginx-snippets/render-pod-conf.sh" }}
{{- toJson $files }}
{{- end }}

{{/* Fully qualified name of the headless Service: nginx's resolver ignores search domains. */}}
{{- define "apigw-syncer.peerServiceFqdn" -}}
{{- printf "%s.%s.svc.%s" (include "apigw-syncer.peerServiceName" .) .Release.Namespace (default "cluster.local" .Values.clusterDomain) }}
{{- end }}

{{- define "apigw-syncer.nginxResolver" -}}
{{- if .Values.nginx.resolver }}
{{- .Values.nginx.resolver }}
{{- else if .Values.ocp4 }}
{{- printf "dns-default.openshift-dns.svc.%s" (default "cluster.local" .Values.clusterDomain) }}
{{- else }}
{{- printf "kube-dns.kube-system.svc.%s" (default "cluster.local" .Values.clusterDomain) }}
{{- end }}
{{- end }}

{{/*
Plus: nginx-snippets/plus/zone-sync-stream.conf with this release's resolver, listen port and
zone_sync_server. Each replaced directive must be found, so a reworded snippet fails the
render instead of silently shipping the example names.
*/}}
{{- define "apigw-syncer.zoneSyncStream" -}}
{{- $path := "files/nginx-snippets/plus/zone-sync-stream.conf" }}
{{- $text := .Files.Get $path }}
{{- $port := int .Values.nginx.zoneSyncPort }}
{{- $edits := list
  (list "(?m)^(\\s*)resolver\\s+[^;]*;" (printf "${1}resolver %s valid=5s;" (include "apigw-syncer.nginxResolver" .)))
  (list "(?m)^(\\s*)listen\\s+[0-9]+;" (printf "${1}listen %d;" $port))
  (list "(?m)^(\\s*)zone_sync_server\\s+\\S+" (printf "${1}zone_sync_server %s:%d" (include "apigw-syncer.peerServiceFqdn" .) $port)) }}
{{- range $edits }}
{{- if not (regexMatch (index . 0) $text) }}
{{- fail (printf "%s: no line matches %s; update templates/_nginx.tpl" $path (index . 0)) }}
{{- end }}
{{- $text = regexReplaceAll (index . 0) $text (index . 1) }}
{{- end }}
{{- $text }}
{{- end }}

{{/* The include line of the chosen policy inside API locations, when the sidecar runs. */}}
{{- define "apigw-syncer.policy" -}}
{{- if .Values.syncer.enabled -}}
include apigw-syncer/common/policy-{{ .Values.nginx.policy }}.conf;
{{- else -}}
# apigw-syncer disabled (syncer.enabled=false): no replication wait.
{{- end }}
{{- end }}

{{- define "apigw-syncer.nginxConf" -}}
{{- $run := include "apigw-syncer.nginxRunDir" . -}}
# Rendered by the apigw-syncer chart (templates/_nginx.tpl). Started as
#   nginx -e stderr -c {{ include "apigw-syncer.nginxConfDir" . }}/nginx.conf -g 'daemon off;'
# after render-pod-conf.sh has written {{ $run }}/apigw-pod.conf.
{{- range .Values.nginx.loadModules }}
load_module {{ . }};
{{- end }}
worker_processes {{ .Values.nginx.workerProcesses }};
# The root filesystem is read-only: everything nginx writes lives in the emptyDir.
pid {{ $run }}/nginx.pid;
error_log stderr {{ .Values.nginx.errorLogLevel }};

events {
    worker_connections {{ .Values.nginx.workerConnections }};
}
{{- if eq .Values.nginx.flavor "plus" }}

{{ include "apigw-syncer.zoneSyncStream" . }}
{{- end }}

http {
    default_type application/octet-stream;
    access_log /dev/stdout;
    sendfile on;
    keepalive_timeout 65s;
    client_body_temp_path {{ $run }}/client_body;
    proxy_temp_path {{ $run }}/proxy;
    fastcgi_temp_path {{ $run }}/fastcgi;
    uwsgi_temp_path {{ $run }}/uwsgi;
    scgi_temp_path {{ $run }}/scgi;

{{- if .Values.syncer.enabled }}

    # Per-pod values ($apigw_pod_name, the sidecar upstream).
    include {{ $run }}/apigw-pod.conf;
{{- end }}
    # $apigw_token (the request's bearer token) and $apigw_token_status.
    include apigw-syncer/common/http.conf;
{{- if not .Values.syncer.enabled }}
    # Set by the policies' auth_request_set when the sidecar runs; defined here so
    # common/http.conf's map compiles without them.
    map "" $apigw_token_status_raw {
        default "";
    }
{{- end }}
    # The token store: {{ if eq .Values.nginx.flavor "plus" }}keyval zone replicated by zone_sync{{ else }}lua stand-in (no replication){{ end }}.
    include apigw-syncer/{{ .Values.nginx.flavor }}/token-store-http.conf;

    server {
        listen {{ with .Values.nginx.listenAddress }}{{ . }}:{{ end }}{{ .Values.nginx.port }};

        # Kubelet probes of the nginx container.
        location = /nginx-healthz {
            access_log off;
            default_type text/plain;
            return 200 "ok\n";
        }

        # The probe location the peers' sidecars call, and the token write API.
        include apigw-syncer/{{ .Values.nginx.flavor }}/token-store-server.conf;
{{- if .Values.syncer.enabled }}
        # The internal auth_request targets of the policies.
        include apigw-syncer/common/check-locations.conf;
{{- end }}

{{- with .Values.nginx.serverConfig }}

{{ tpl . $ | trimSuffix "\n" | indent 8 }}
{{- end }}
    }

    include conf.d/*.conf;
}
{{- end }}

{{/* A ConfigMap key for a path under confDir: "apigw-syncer/common/http.conf" → "apigw-syncer_common_http.conf". */}}
{{- define "apigw-syncer.configKey" -}}
{{- replace "/" "_" . }}
{{- end }}

{{/* Every file of the nginx ConfigMap, as path under confDir → content (JSON). */}}
{{- define "apigw-syncer.nginxConfigFiles" -}}
{{- $out := dict "nginx.conf" (include "apigw-syncer.nginxConf" .) }}
{{- range $path, $src := include "apigw-syncer.nginxSnippetFiles" . | fromJson }}
{{- $_ := set $out $path ($.Files.Get $src) }}
{{- end }}
{{- if not (hasKey $out "apigw-syncer/common/http.conf") }}
{{- fail "files/nginx-snippets (symlink to nginx-snippets/) holds no common/*.conf: is the chart packaged from the repository?" }}
{{- end }}
{{- $_ := set $out "html/index.html" .Values.nginx.indexHtml }}
{{- range $name, $content := .Values.nginx.extraConfig }}
{{- $_ := set $out (printf "conf.d/%s" $name) $content }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* The configMap volume's items: each flattened key back at its path. */}}
{{- define "apigw-syncer.nginxConfigItems" -}}
{{- range $path, $_ := include "apigw-syncer.nginxConfigFiles" . | fromJson }}
- key: {{ include "apigw-syncer.configKey" $path }}
  path: {{ $path }}
{{- end }}
{{- end }}

{{/*
The nginx container's shell command: write the per-pod file, then exec nginx in the
foreground, so nginx replaces the shell as PID 1 and gets SIGTERM/SIGQUIT itself.
*/}}
{{- define "apigw-syncer.nginxStartCommand" -}}
{{- $conf := include "apigw-syncer.nginxConfDir" . }}
{{- $run := include "apigw-syncer.nginxRunDir" . }}
{{- $cmd := printf "exec %s -e stderr -c %s/nginx.conf -g 'daemon off;'" .Values.nginx.binary $conf }}
{{- if .Values.syncer.enabled }}
{{- $cmd = printf "sh %s/apigw-syncer/render-pod-conf.sh %s/apigw-pod.conf && %s" $conf $run $cmd }}
{{- end }}
{{- $cmd }}
{{- end }}

{{/*
Containers of a pod share one network namespace: a port used twice fails at bind time, in
whichever container starts second. Catch it at render time instead.
*/}}
{{- define "apigw-syncer.checkPorts" -}}
{{- $used := dict (toString (int .Values.nginx.port)) "nginx.port" }}
{{- $claims := list }}
{{- if eq .Values.nginx.flavor "plus" }}
{{- $claims = append $claims (list "nginx.zoneSyncPort" (int .Values.nginx.zoneSyncPort)) }}
{{- end }}
{{- if .Values.syncer.enabled }}
{{- $claims = append $claims (list "syncer.opsPort" (int .Values.syncer.opsPort)) }}
{{- $listen := default "127.0.0.1:8080" .Values.syncer.config.listenAddr }}
{{- $claims = append $claims (list "syncer.config.listenAddr" (int (regexFind "[0-9]+$" $listen))) }}
{{- end }}
{{- range $claims }}
{{- $port := toString (index . 1) }}
{{- if hasKey $used $port }}
{{- fail (printf "%s uses port %s, already used by %s: the containers of a pod share their ports" (index . 0) $port (get $used $port)) }}
{{- end }}
{{- $_ := set $used $port (index . 0) }}
{{- end }}
{{- end }}
