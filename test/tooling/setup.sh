#!/usr/bin/env bash
# Everything the tests need beyond node_modules, installed or built here so a clean
# machine passes: nginx + lua from Debian, control plane, helm and promtool from Go modules
# (with the prometheus-operator CRDs), cert-manager's CRDs from its Go module, and the
# production Node runtime from the npm registry (all cached).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/install-nginx.sh"
bash "$here/build-go-tools.sh"
bash "$here/fetch-cert-manager-crds.sh"
bash "$here/build-prometheus-tools.sh"
bash "$here/install-node-runtime.sh"
