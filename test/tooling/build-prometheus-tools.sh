#!/usr/bin/env bash
# Builds (once) and caches what the monitoring tests run: promtool, from the Prometheus Go
# module, and the prometheus-operator CRDs (ServiceMonitor, PrometheusRule, …), from the
# operator's Go module, at the versions pinned in versions.env:
#   ${APIGW_SYNCER_CACHE:-$HOME/.cache/apigw-syncer}/tools/promtool-<version>/promtool
#   ${APIGW_SYNCER_CACHE:-$HOME/.cache/apigw-syncer}/tools/prometheus-operator-crds-<version>/*.yaml
#
# github.com/prometheus/prometheus cannot be `go install`ed by version: its go.mod has
# replace and exclude directives. So the module is downloaded and promtool built inside its
# directory, with GOWORK=off (the module ships a go.work).
set -euo pipefail

log() { printf '[build-prometheus-tools] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
: "${PROMETHEUS_VERSION:?missing in versions.env}" "${PROMETHEUS_OPERATOR_VERSION:?missing in versions.env}"

cache_root=${APIGW_SYNCER_CACHE:-${HOME:?neither APIGW_SYNCER_CACHE nor HOME is set}/.cache/apigw-syncer}
tools_dir=$cache_root/tools
promtool_bin=$tools_dir/promtool-$PROMETHEUS_VERSION/promtool
crd_dir=$tools_dir/prometheus-operator-crds-$PROMETHEUS_OPERATOR_VERSION
# The CRDs the chart's objects need; the directory holds every CRD of the release.
crd_files=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml)

promtool_ok() { [[ -x $promtool_bin ]] && "$promtool_bin" --version >/dev/null 2>&1; }
crds_ok() {
  local f
  for f in "${crd_files[@]}"; do [[ -s $crd_dir/$f ]] || return 1; done
}

if promtool_ok && crds_ok; then
  log "cached: promtool $PROMETHEUS_VERSION, prometheus-operator CRDs $PROMETHEUS_OPERATOR_VERSION ($tools_dir)"
  exit 0
fi

# One builder at a time, then look again.
mkdir -p "$tools_dir"
# shellcheck source=lib.sh
. "$here/lib.sh"
take_build_lock "$tools_dir/.prometheus-tools.lock" log
if promtool_ok && crds_ok; then
  log "built meanwhile by another run: nothing to do"
  exit 0
fi

command -v go >/dev/null 2>&1 || [[ -x /usr/local/go/bin/go ]] || die "go not found (need Go >= 1.26 on PATH or at /usr/local/go/bin)"
command -v go >/dev/null 2>&1 || PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=0 GOTOOLCHAIN=local
log "using $(go version)"

if ! promtool_ok; then
  start=$SECONDS
  dir=$(module_dir "github.com/prometheus/prometheus@$PROMETHEUS_VERSION" "$tools_dir") || die "could not download github.com/prometheus/prometheus@$PROMETHEUS_VERSION"
  # Module tag v0.3yy.z is Prometheus v3.yy.z: promtool --version says so.
  [[ $PROMETHEUS_VERSION =~ ^v0\.3([0-9]{2})\.([0-9]+)$ ]] || die "PROMETHEUS_VERSION must look like v0.3yy.z, got $PROMETHEUS_VERSION"
  release=3.$((10#${BASH_REMATCH[1]})).${BASH_REMATCH[2]}
  log "building promtool $release from $dir (minutes on a cold cache)"
  mkdir -p "$(dirname "$promtool_bin")"
  # remove_all_sd leaves out the service-discovery plugins (cloud SDKs, client-go): rule checks
  # and rule unit tests need none. Measured cold (empty build cache) on a 2-core machine: 4.5 min
  # of CPU instead of 10.5, a 54 MB binary instead of 88.
  (cd "$dir" && GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -tags remove_all_sd \
    -ldflags="-s -w -X github.com/prometheus/common/version.Version=$release" \
    -o "$promtool_bin.tmp" ./cmd/promtool) || die "go build ./cmd/promtool failed in $dir"
  mv -f "$promtool_bin.tmp" "$promtool_bin"
  promtool_ok || die "$promtool_bin was built but does not answer --version"
  log "built promtool in $((SECONDS - start)) s"
fi

if ! crds_ok; then
  dir=$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" "$tools_dir") || die "could not download github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION"
  src=$dir/example/prometheus-operator-crd
  [[ -d $src ]] || die "no example/prometheus-operator-crd in $dir"
  tmp=$crd_dir.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  cp "$src"/*.yaml "$tmp/"
  chmod -R u+w "$tmp" # the module cache is read-only
  rm -rf "$crd_dir"
  mv "$tmp" "$crd_dir"
  crds_ok || die "$crd_dir lacks ${crd_files[*]}"
  log "prometheus-operator CRDs $PROMETHEUS_OPERATOR_VERSION in $crd_dir"
fi

log "ready: promtool $PROMETHEUS_VERSION, prometheus-operator CRDs $PROMETHEUS_OPERATOR_VERSION ($tools_dir)"
