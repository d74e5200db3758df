{{/*
nginx configuration assembled from nginx-snippets/ (files/nginx-snippets is a symlink to it):
the snippets are shipped verbatim in the ConfigMap; only nginx.conf (below) is rendered, with
this release's values: listeners, who may probe and sync, and for Plus the mgmt block and the
zone_sync stream block (nginx-snippets/plus/zone-sync-stream.conf is the same block written
by hand; test/helm-plus.test.ts checks both use the same directives).

Layout in the pod (test/helm.test.ts runs nginx on exactly this layout):
  <confDir>/nginx.conf                       this template
  <confDir>/apigw-syncer/common/*.conf       nginx-snippets/common
  <confDir>/apigw-syncer/<flavor>/*.conf     nginx-snippets/<flavor> (Plus: with zone-sync*.conf)
  <confDir>/apigw-syncer/render-pod-conf.sh  writes <runDir>/apigw-pod.conf at container start
  <confDir>/apigw-syncer/reload-on-change.sh reloads nginx when the TLS files change (tls)
  <confDir>/conf.d/*.conf                    nginx.extraConfig
  <confDir>/html/index.html                  default content of the example API location
  <runDir>/                                  emptyDir: per-pod file, pid, temp
  <nginx.plus.mgmt.statePath>/               Plus: emptyDir for the license state
  <tls.mountPath>/server, /client            the certificates (tls; client: Plus's zone_sync)
  nginx.extraVolumeMounts                    Plus: license.jwt, ...
Relative include paths resolve against <confDir>, the directory of the -c file.
Servers: clients on nginx.port; the probe server on nginx.probePort (peers only, when the
sidecar runs); the token write API on 127.0.0.1 (and [::1]) nginx.apiPort.
*/}}

{{- define "apigw-syncer.nginxRunDir" -}}
{{- default "/run/apigw-syncer" .Values.nginx.runDir }}
{{- end }}

{{- define "apigw-syncer.nginxConfDir" -}}
{{- default "/etc/apigw" .Values.nginx.confDir }}
{{- end }}

{{- define "apigw-syncer.isPlus" -}}
{{- if eq .Values.nginx.flavor "plus" }}true{{ end }}
{{- end }}

{{/* The nginx image: nginx.plus.image for Plus (required by the schema), else nginx.image. */}}
{{- define "apigw-syncer.nginxImageValues" -}}
{{- if include "apigw-syncer.isPlus" . }}
{{- toJson .Values.nginx.plus.image }}
{{- else }}
{{- toJson .Values.nginx.image }}
{{- end }}
{{- end }}

{{/* The snippet files the selected flavor needs, as ConfigMap key → path under confDir. */}}
{{- define "apigw-syncer.nginxSnippetFiles" -}}
{{- $files := dict }}
{{- range $path, $_ := .Files.Glob "files/nginx-snippets/common/*.conf" }}
{{- $_ := set $files (printf "apigw-syncer/common/%s" (base $path)) $path }}
{{- end }}
{{- $flavorFiles := list "token-store-*.conf" }}
{{- if include "apigw-syncer.isPlus" . }}
{{- $flavorFiles = concat $flavorFiles (list "zone-sync.conf" "zone-sync-tls.conf") }}
{{- end }}
{{- range $flavorFiles }}
{{- range $path, $_ := $.Files.Glob (printf "files/nginx-snippets/%s/%s" $.Values.nginx.flavor .) }}
{{- $_ := set $files (printf "apigw-syncer/%s/%s" $.Values.nginx.flavor (base $path)) $path }}
{{- end }}
{{- end }}
{{- $_ := set $files "apigw-syncer/render-pod-conf.sh" "files/nginx-snippets/render-pod-conf.sh" }}
{{- $_ := set $files "apigw-syncer/reload-on-change.sh" "files/nginx-snippets/reload-on-change.sh" }}
{{- toJson $files }}
{{- end }}

{{/* Fully qualified name of the headless Service: nginx's resolver ignores search domains. */}}
{{- define "apigw-syncer.peerServiceFqdn" -}}
{{- printf "%s.%s.svc.%s" (include "apigw-syncer.peerServiceName" .) .Release.Namespace (default "cluster.local" .Values.clusterDomain) }}
{{- end }}

{{/*
The DNS server nginx resolves the headless Service with. A name, not an IP: nginx resolves it
once, at start, with the system resolver (the pod's /etc/resolv.conf, i.e. the cluster DNS).
*/}}
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
Who may call the probe server and connect to zone_sync, as JSON: nginx.peerSources, and
loopback only when nginx.allowLoopbackPeers (a mesh forwarding from 127.0.0.x; values.yaml says
what that admits).
*/}}
{{- define "apigw-syncer.peerSources" -}}
{{- $sources := .Values.nginx.peerSources }}
{{- if .Values.nginx.allowLoopbackPeers }}
{{- $sources = concat $sources (list "127.0.0.0/8" "::1") }}
{{- end }}
{{- toJson (uniq $sources) }}
{{- end }}

{{/*
listen lines of a listener reachable from other pods (clients, probe, zone_sync): on
nginx.listenAddress when it is set, else on every family of nginx.ipFamilies.
Arguments: dict "ctx" <chart context> "port" <port> "params" <" ssl" or "">.
*/}}
{{- define "apigw-syncer.listen" -}}
{{- $n := .ctx.Values.nginx }}
{{- $tail := printf "%d%s;" (int .port) (default "" .params) }}
{{- $lines := list }}
{{- if $n.listenAddress }}
{{- $lines = append $lines (printf "listen %s:%s" $n.listenAddress $tail) }}
{{- else }}
{{- range $n.ipFamilies }}
{{- $lines = append $lines (printf "listen %s%s" (ternary "[::]:" "" (eq . "IPv6")) $tail) }}
{{- end }}
{{- end }}
{{- join "\n" $lines }}
{{- end }}

{{/* "true" when .path is at or under the mountPath of one of .mounts. */}}
{{- define "apigw-syncer.isMounted" -}}
{{- range .mounts }}
{{- $dir := trimSuffix "/" .mountPath }}
{{- if or (eq $.path $dir) (hasPrefix (printf "%s/" $dir) $.path) }}true{{ end }}
{{- end }}
{{- end }}

{{/*
The nginx container's own volumes beyond the ConfigMap and the run dir: the TLS certificates
(the server one; Plus: the client one too, for zone_sync's connections out, unless the sidecar's
volume already brings it into the pod), Plus's mgmt state emptyDir, then nginx.extraVolumes.
Checks that names and mount paths do not collide and that the file the Plus config points at
(license.jwt) is mounted.
Output: JSON {"volumes": [...], "mounts": [...]}.
*/}}
{{- define "apigw-syncer.nginxExtraVolumes" -}}
{{- $n := .Values.nginx }}
{{- $volumes := list }}
{{- $mounts := list }}
{{- $names := dict "nginx-config" "the chart" "run" "the chart" "syncer-api-token" "the chart" "syncer-probe-tls" "the chart" "tls-server" "the chart (tls)" "tls-client" "the chart (tls)" }}
{{- $plus := include "apigw-syncer.isPlus" . }}
{{- if include "apigw-syncer.tlsEnabled" . }}
{{- $secrets := include "apigw-syncer.tlsSecretNames" . | fromJson }}
{{- $volumes = append $volumes (include "apigw-syncer.tlsVolume" (dict "name" "tls-server" "secretName" $secrets.server) | fromYamlArray | first) }}
{{- $mounts = append $mounts (dict "name" "tls-server" "mountPath" (include "apigw-syncer.tlsServerDir" .) "readOnly" true) }}
{{- if $plus }}
{{- if not (include "apigw-syncer.sidecarUsesChartTls" .) }}
{{- $volumes = append $volumes (include "apigw-syncer.tlsVolume" (dict "name" "tls-client" "secretName" $secrets.client) | fromYamlArray | first) }}
{{- end }}
{{- $mounts = append $mounts (dict "name" "tls-client" "mountPath" (include "apigw-syncer.tlsClientDir" .) "readOnly" true) }}
{{- end }}
{{- end }}
{{- $mgmt := and $plus $n.plus.mgmt.enabled }}
{{- if and $mgmt (not (include "apigw-syncer.isMounted" (dict "path" $n.plus.mgmt.statePath "mounts" $n.extraVolumeMounts))) }}
{{- $volumes = append $volumes (dict "name" "mgmt-state" "emptyDir" (dict "sizeLimit" "8Mi")) }}
{{- $mounts = append $mounts (dict "name" "mgmt-state" "mountPath" $n.plus.mgmt.statePath) }}
{{- $_ := set $names "mgmt-state" "the chart (nginx.plus.mgmt.statePath)" }}
{{- end }}
{{- range $n.extraVolumes }}
{{- if hasKey $names .name }}
{{- fail (printf "nginx.extraVolumes: the volume name %q is taken (by %s)" .name (get $names .name)) }}
{{- end }}
{{- $_ := set $names .name "nginx.extraVolumes" }}
{{- end }}
{{- $volumes = concat $volumes $n.extraVolumes }}
{{- $mounts = concat $mounts $n.extraVolumeMounts }}
{{- $paths := dict (include "apigw-syncer.nginxConfDir" .) "nginx.confDir" (include "apigw-syncer.nginxRunDir" .) "nginx.runDir" }}
{{- range $mounts }}
{{- if or (not (hasKey $names .name)) (eq (get $names .name) "the chart") }}
{{- fail (printf "nginx.extraVolumeMounts: %s mounts volume %q, which is not in nginx.extraVolumes" .mountPath .name) }}
{{- end }}
{{- if hasKey $paths .mountPath }}
{{- fail (printf "nginx.extraVolumeMounts: %s is already used by %s" .mountPath (get $paths .mountPath)) }}
{{- end }}
{{- $_ := set $paths .mountPath .name }}
{{- end }}
{{- if and $mgmt (not (include "apigw-syncer.isMounted" (dict "path" $n.plus.mgmt.licenseToken "mounts" $n.extraVolumeMounts))) }}
{{- fail (printf "nginx.plus.mgmt.licenseToken (%s) is not in any nginx.extraVolumeMounts: mount the Secret holding license.jwt there (NGINX Plus R33+ does not start without it; see helm/README.md)" $n.plus.mgmt.licenseToken) }}
{{- end }}
{{- if $mgmt }}
{{- range $value, $file := dict "proxyCredentialsFile" $n.plus.mgmt.proxyCredentialsFile "sslTrustedCertificate" $n.plus.mgmt.sslTrustedCertificate }}
{{- if and $file (not (include "apigw-syncer.isMounted" (dict "path" $file "mounts" $n.extraVolumeMounts))) }}
{{- fail (printf "nginx.plus.mgmt.%s (%s) is not in any nginx.extraVolumeMounts: mount the Secret holding it there (see helm/README.md)" $value $file) }}
{{- end }}
{{- end }}
{{- if and $n.plus.mgmt.proxyCredentialsFile (not $n.plus.mgmt.proxy) }}
{{- fail "nginx.plus.mgmt.proxyCredentialsFile is set without nginx.plus.mgmt.proxy: the credentials are for that proxy" }}
{{- end }}
{{- end }}
{{- toJson (dict "volumes" $volumes "mounts" $mounts) }}
{{- end }}

{{/* The include line of the chosen policy inside API locations, when the sidecar runs. */}}
{{- define "apigw-syncer.policy" -}}
{{- if .Values.syncer.enabled -}}
include apigw-syncer/common/policy-{{ .Values.nginx.policy }}.conf;
{{- else -}}
# apigw-syncer disabled (syncer.enabled=false): no replication wait.
{{- end }}
{{- end }}

{{/*
Plus, main context: license verification and usage reporting, mandatory since R33 ("This is
mandatory for each NGINX Plus instance since 1.27.2", ngx_mgmt_module): license.jwt from a
mounted Secret, and a writable state directory (the default, /var/lib/nginx/state, is on the
read-only root filesystem) — an emptyDir mounted at statePath unless a volume of the user's is.
The rest is what real egress needs (ngx_mgmt_module): usage_report endpoint= (NGINX Instance
Manager), proxy (1.27.4, R34) with proxy_username/proxy_password from an included file (a
mounted Secret: the password never enters the ConfigMap), ssl_trusted_certificate/ssl_verify
for an endpoint on a private CA, enforce_initial_report.
*/}}
{{- define "apigw-syncer.mgmt" -}}
{{- $m := .Values.nginx.plus.mgmt -}}
# NGINX Plus R33+: license and usage reporting (nginx.plus.mgmt).
mgmt {
    license_token {{ $m.licenseToken }};
    state_path {{ $m.statePath }};
{{- with $m.usageReportEndpoint }}
    usage_report endpoint={{ . }};
{{- end }}
{{- with $m.proxy }}
    proxy {{ . }};
{{- end }}
{{- with $m.proxyCredentialsFile }}
    include {{ . }};
{{- end }}
{{- with $m.sslTrustedCertificate }}
    ssl_trusted_certificate {{ . }};
{{- end }}
{{- if and (hasKey $m "sslVerify") (not $m.sslVerify) }}
    ssl_verify off;
{{- end }}
{{- if not $m.enforceInitialReport }}
    enforce_initial_report off;
{{- end }}
}
{{- end }}

{{/*
Plus, main context: zone_sync between the replicas, the same directives as
nginx-snippets/plus/zone-sync-stream.conf with this release's values.
*/}}
{{- define "apigw-syncer.zoneSyncStream" -}}
{{- $n := .Values.nginx }}
{{- $tls := include "apigw-syncer.tlsEnabled" . }}
{{- $fqdn := include "apigw-syncer.peerServiceFqdn" . -}}
stream {
    # zone_sync_server ... resolve resolves the Service with this DNS server (nginx's resolver
    # ignores search domains: the names here are fully qualified).
    resolver {{ include "apigw-syncer.nginxResolver" . }} valid=5s;
    resolver_timeout 2s;

    server {
        {{- include "apigw-syncer.listen" (dict "ctx" . "port" $n.zoneSyncPort "params" (ternary " ssl" "" (eq $tls "true"))) | nindent 8 }}

        # Only the pod network may connect (nginx.peerSources).
{{- range include "apigw-syncer.peerSources" . | fromJsonArray }}
        allow {{ . }};
{{- end }}
        deny all;

        # Every replica: the headless Service lists every apigw pod, ready or not
        # (publishNotReadyAddresses); `resolve` follows pods as they come and go.
        zone_sync_server {{ $fqdn }}:{{ int $n.zoneSyncPort }} resolve;
        include apigw-syncer/plus/zone-sync.conf;
{{- if $tls }}
{{- $server := include "apigw-syncer.tlsServerDir" . }}
{{- $client := include "apigw-syncer.tlsClientDir" . }}

        # Mutual TLS (tls): the server certificate for replicas connecting in, the client
        # certificate for connections out, both checked against the release's CA.
        ssl_certificate {{ $server }}/tls.crt;
        ssl_certificate_key {{ $server }}/tls.key;
        ssl_client_certificate {{ $server }}/ca.crt;
        zone_sync_ssl_certificate {{ $client }}/tls.crt;
        zone_sync_ssl_certificate_key {{ $client }}/tls.key;
        zone_sync_ssl_trusted_certificate {{ $client }}/ca.crt;
        zone_sync_ssl_name {{ include "apigw-syncer.tlsServerName" . }};
        # CAs allowed above a peer's certificate, the root aside (tls.verifyDepth).
        ssl_verify_depth {{ int .Values.tls.verifyDepth }};
        zone_sync_ssl_verify_depth {{ int .Values.tls.verifyDepth }};
        include apigw-syncer/plus/zone-sync-tls.conf;
{{- else }}

        # tls.enabled=false: every token crosses the pod network in clear text.
{{- end }}
    }
}
{{- end }}

{{- define "apigw-syncer.nginxConf" -}}
{{- $run := include "apigw-syncer.nginxRunDir" . -}}
{{- $n := .Values.nginx -}}
{{- $plus := include "apigw-syncer.isPlus" . -}}
# Rendered by the apigw-syncer chart (templates/_nginx.tpl). Started as
#   nginx -e stderr -c {{ include "apigw-syncer.nginxConfDir" . }}/nginx.conf -g 'daemon off;'
# after render-pod-conf.sh has written {{ $run }}/apigw-pod.conf.
{{- range $n.loadModules }}
load_module {{ . }};
{{- end }}
worker_processes {{ $n.workerProcesses }};
# The root filesystem is read-only: everything nginx writes lives in the emptyDir.
pid {{ $run }}/nginx.pid;
error_log stderr {{ $n.errorLogLevel }};
{{- if and $plus $n.plus.mgmt.enabled }}

{{ include "apigw-syncer.mgmt" . }}
{{- end }}

events {
    worker_connections {{ $n.workerConnections }};
}
{{- if $plus }}

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
    # The token store: {{ if $plus }}keyval zone replicated by zone_sync{{ else }}lua stand-in (no replication){{ end }}.
    include apigw-syncer/{{ $n.flavor }}/token-store-http.conf;
{{- if .Values.syncer.enabled }}

    # Who may call the probe server (nginx.peerSources); the others get 403.
    geo $apigw_probe_denied {
        default 1;
{{- range include "apigw-syncer.peerSources" . | fromJsonArray }}
        {{ . }} 0;
{{- end }}
    }

    # The probe server: the other replicas' sidecars ask it whether this replica holds a token.
    # Only the headless peer Service lists this port, never the client Service.
    server {
{{- if include "apigw-syncer.tlsEnabled" . }}
{{- $server := include "apigw-syncer.tlsServerDir" . }}
        {{- include "apigw-syncer.listen" (dict "ctx" . "port" $n.probePort "params" " ssl") | nindent 8 }}
        # Mutual TLS (tls): only sidecars with a client certificate from the release's CA.
        ssl_certificate {{ $server }}/tls.crt;
        ssl_certificate_key {{ $server }}/tls.key;
        ssl_client_certificate {{ $server }}/ca.crt;
        # CAs allowed above a sidecar's certificate, the root aside (tls.verifyDepth).
        ssl_verify_depth {{ int .Values.tls.verifyDepth }};
        include apigw-syncer/common/probe-server-tls.conf;
{{- else }}
        {{- include "apigw-syncer.listen" (dict "ctx" . "port" $n.probePort) | nindent 8 }}
        # tls.enabled=false: every token a check asks about crosses the pod network in clear text.
{{- end }}
        include apigw-syncer/{{ $n.flavor }}/token-store-probe.conf;
    }
{{- end }}

    # The token write API, for token issuers inside the pod: loopback only.
    server {
        listen 127.0.0.1:{{ int $n.apiPort }};
{{- if has "IPv6" $n.ipFamilies }}
        listen [::1]:{{ int $n.apiPort }};
{{- end }}
        include apigw-syncer/{{ $n.flavor }}/token-store-api.conf;
    }

    # The API clients use.
    server {
        {{- include "apigw-syncer.listen" (dict "ctx" . "port" $n.port) | nindent 8 }}
        # Bearer tokens up to 8 KiB (the sidecar's limit) fit in one header buffer.
        large_client_header_buffers 4 16k;

        # Kubelet probes of the nginx container.
        location = /nginx-healthz {
            access_log off;
            default_type text/plain;
            return 200 "ok\n";
        }
{{- if .Values.syncer.enabled }}

        # The internal auth_request targets of the policies.
        include apigw-syncer/common/check-locations.conf;
{{- end }}

{{- with $n.serverConfig }}

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
The nginx container's shell script. It writes the per-pod file; with TLS, it starts the watch
that reloads nginx when the mounted certificates change (nginx reads them only at start and
reload: a renewal must not wait for the next restart); then it runs nginx in the foreground as
its child and stays PID 1 to turn the container's stop signal into nginx's graceful quit: the
kubelet stops a container with SIGTERM (or the image's STOPSIGNAL, SIGQUIT in nginx's own
images) sent to PID 1 alone, and SIGTERM is nginx's *fast* shutdown, which cuts the requests in
flight. So the preStop hook only has to sleep through the endpoints' update and can end on its
own: it must not outlive nginx. A hook that waited for nginx to exit, as this chart's did, ran
inside the container's PID namespace, and when PID 1 exits the kernel kills every process left
there — the hook with it — so the kubelet saw the hook fail (ExecSync exit 137 → "PreStopHook
failed", a FailedPreStopHook event) on every termination. `wait` returns early when a trapped
signal arrives: it is repeated until nginx has exited, whose status becomes the container's.
*/}}
{{- define "apigw-syncer.nginxStartCommand" -}}
{{- $conf := include "apigw-syncer.nginxConfDir" . }}
{{- $run := include "apigw-syncer.nginxRunDir" . }}
{{- if .Values.syncer.enabled }}
{{- printf "sh %s/apigw-syncer/render-pod-conf.sh %s/apigw-pod.conf || exit 1\n" $conf $run }}
{{- end }}
{{- printf "%s -e stderr -c %s/nginx.conf -g 'daemon off;' &\n" .Values.nginx.binary $conf }}
{{- printf "nginx_pid=$!\n" }}
{{- if include "apigw-syncer.tlsEnabled" . }}
{{- $files := list }}
{{- range $m := (include "apigw-syncer.nginxExtraVolumes" . | fromJson).mounts }}
{{- if hasPrefix "tls-" $m.name }}
{{- range $file := list "tls.crt" "tls.key" "ca.crt" }}{{ $files = append $files (printf "%s/%s" $m.mountPath $file) }}{{ end }}
{{- end }}
{{- end }}
{{- printf "NGINX_PID=$nginx_pid sh %s/apigw-syncer/reload-on-change.sh %d %s &\n" $conf (int .Values.tls.reloadIntervalSeconds) (join " " $files) }}
{{- end }}
{{- printf "trap 'kill -QUIT $nginx_pid' TERM QUIT INT\n" }}
{{- printf "while :; do wait $nginx_pid; status=$?; kill -0 $nginx_pid 2>/dev/null || exit $status; done" }}
{{- end }}

{{/*
Containers of a pod share one network namespace: a port used twice fails at bind time, in
whichever container starts second. Catch it at render time instead.
*/}}
{{- define "apigw-syncer.checkPorts" -}}
{{- $used := dict (toString (int .Values.nginx.port)) "nginx.port" }}
{{- $claims := list (list "nginx.apiPort" (int .Values.nginx.apiPort)) }}
{{- if eq .Values.nginx.flavor "plus" }}
{{- $claims = append $claims (list "nginx.zoneSyncPort" (int .Values.nginx.zoneSyncPort)) }}
{{- end }}
{{- if .Values.syncer.enabled }}
{{- $claims = append $claims (list "nginx.probePort" (int .Values.nginx.probePort)) }}
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
