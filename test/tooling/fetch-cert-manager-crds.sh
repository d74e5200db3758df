#!/usr/bin/env bash
# Fetches (once) and caches cert-manager's CustomResourceDefinitions, so the chart's rendered
# Certificate objects can be applied to the test control plane with strict validation. They come
# with cert-manager's Go module (deploy/crds/*.yaml) at CERT_MANAGER_VERSION (versions.env),
# from the Go module proxy; cached in
#   ${APIGW_SYNCER_CACHE:-$HOME/.cache/apigw-syncer}/tools/cert-manager-crds-<version>/
set -euo pipefail

log() { printf '[fetch-cert-manager-crds] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
: "${CERT_MANAGER_VERSION:?missing in versions.env}"

cache_root=${APIGW_SYNCER_CACHE:-${HOME:?neither APIGW_SYNCER_CACHE nor HOME is set}/.cache/apigw-syncer}
tools_dir=$cache_root/tools
out=$tools_dir/cert-manager-crds-$CERT_MANAGER_VERSION
marker=$out/cert-manager.io_certificates.yaml

[[ -s $marker ]] && exit 0

mkdir -p "$tools_dir"
# One fetcher at a time (parallel CI jobs); look again once the lock is ours.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$tools_dir/.cert-manager-crds.lock"
  flock 9
  [[ -s $marker ]] && exit 0
fi

command -v go >/dev/null 2>&1 || PATH=/usr/local/go/bin:$PATH
command -v go >/dev/null 2>&1 || die "go not found (on PATH or at /usr/local/go/bin)"
# Outside any module, only the download: no build, no go.work.
dir=$(cd "$tools_dir" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -n $dir && -d $dir/deploy/crds ]] || die "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION has no deploy/crds"
tmp=$(mktemp -d "$tools_dir/.cert-manager-crds.XXXXXX")
cp "$dir"/deploy/crds/*.yaml "$tmp/"
rm -rf "$out"
mv "$tmp" "$out"
log "cached $(ls "$out" | wc -l) CRDs of cert-manager $CERT_MANAGER_VERSION in $out"
