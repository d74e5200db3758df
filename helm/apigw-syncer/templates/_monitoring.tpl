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

{{/*
The canary's timing as the sidecar gets it, as JSON: {"intervalMs": N, "timeoutMs": M}, read
from the syncer's rendered environment (so syncer.canary, syncer.config and extraEnv count
alike); intervalMs 0: the canary is off. Unset variables keep the sidecar's defaults (off, 5000).
*/}}
{{- define "apigw-syncer.canaryTiming" -}}
{{- $timing := dict "intervalMs" 0 "timeoutMs" 5000 }}
{{- range $e := fromYamlArray (include "apigw-syncer.syncerEnv" .) }}
{{- if eq (toString $e.name) "SYNCER_CANARY_INTERVAL_MS" }}{{ $_ := set $timing "intervalMs" (int $e.value) }}{{ end }}
{{- if eq (toString $e.name) "SYNCER_CANARY_TIMEOUT_MS" }}{{ $_ := set $timing "timeoutMs" (int $e.value) }}{{ end }}
{{- end }}
{{- toJson $timing }}
{{- end }}

{{/*
ApigwSyncerMemoryNearLimit's threshold (resident memory / the container's memory limit):
metrics.prometheusRule.alerts.memoryNearLimit.threshold, or one derived from the syncer's
sizing. V8's heap cap (NODE_OPTIONS, by default half the limit) ends a growing JavaScript heap
in a heap-limit abort with resident memory at about the cap + 60 MiB (the binary's pages, the
young generation, buffers), long before the limit: a fixed 0.8 would never fire first. So the
threshold sits 32 MiB above the cap (0.63 of the chart's 240Mi, above the measured peak of ~118
MB), at most 0.9; 0.8 when the cap or the limit is unknown here (only an OOM kill to foresee).
*/}}
{{- define "apigw-syncer.memoryAlertThreshold" -}}
{{- $set := .Values.metrics.prometheusRule.alerts.memoryNearLimit.threshold }}
{{- if not (kindIs "invalid" $set) }}
{{- $set }}
{{- else }}
{{- $limitMiB := int (include "apigw-syncer.memoryLimitMiB" .Values.syncer | default "0") }}
{{- $capMiB := int (include "apigw-syncer.maxOldSpaceMiB" .Values.syncer | default "0") }}
{{- if and (gt $limitMiB 0) (gt $capMiB 0) }}
{{- minf 0.9 (divf (floor (mulf 100 (divf (add $capMiB 32) $limitMiB))) 100) }}
{{- else }}
{{- 0.8 }}
{{- end }}
{{- end }}
{{- end }}
