{{/*
An alert's labels: its severity, then metrics.prometheusRule.alertLabels (which cannot replace
the severity). Arguments: dict "severity" <string> "extra" <map>.
*/}}
{{- define "apigw-syncer.alertLabels" -}}
{{- toYaml (merge (dict "severity" .severity) (default dict .extra)) }}
{{- end }}

{{/*
"true" when the chart renders a NetworkPolicy that admits nobody to the sidecar's ops port, so
no Prometheus can scrape /metrics. Keyed on the policy as rendered (whatever turns it on), not
on the values that turn it on.
*/}}
{{- define "apigw-syncer.opsPortBlocked" -}}
{{- $policy := fromYaml (include (print .Template.BasePath "/networkpolicy.yaml") .) }}
{{- if eq (toString $policy.kind) "NetworkPolicy" }}
{{- $admitted := false }}
{{- range $rule := (default list $policy.spec.ingress) }}
{{- range $port := (default list $rule.ports) }}
{{- if eq (toString $port.port) (toString $.Values.syncer.opsPort) }}{{ $admitted = true }}{{ end }}
{{- end }}
{{- end }}
{{- if not $admitted }}true{{ end }}
{{- end }}
{{- end }}
