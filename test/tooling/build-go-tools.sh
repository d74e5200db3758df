#!/usr/bin/env bash
# Builds (once) and caches the Go tools the tests run: etcd, kube-apiserver,
# kube-controller-manager and helm, from Go modules at the versions pinned in
# versions.env. Cached binaries live in
#   ${APIGW_SYNCER_CACHE:-$HOME/.cache/apigw-syncer}/tools/<name>-<version>/<binary>
# and are reused when they are present and answer --version.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod requires its staging
# modules at v0.0.0 and replaces them with ./staging/... paths, which only work
# inside the kubernetes repo. So for each tool we generate a small wrapper module
# that requires the tool's module and, for kubernetes, replaces every staging
# module (derived from the downloaded k8s.io/kubernetes go.mod) with its
# published v0.<minor>.<patch> release. etcd's server module has the same kind
# of local replaces, so it gets a wrapper module too; helm for uniformity.
set -euo pipefail

log() { printf '[build-go-tools] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
: "${KUBERNETES_VERSION:?missing in versions.env}" "${ETCD_VERSION:?missing in versions.env}" "${HELM_VERSION:?missing in versions.env}"

cache_root=${APIGW_SYNCER_CACHE:-${HOME:?neither APIGW_SYNCER_CACHE nor HOME is set}/.cache/apigw-syncer}
tools_dir=$cache_root/tools
src_root=$tools_dir/.src

bin_path() { printf '%s/%s-%s/%s' "$tools_dir" "$1" "$2" "$1"; }

etcd_bin=$(bin_path etcd "$ETCD_VERSION")
apiserver_bin=$(bin_path kube-apiserver "$KUBERNETES_VERSION")
kcm_bin=$(bin_path kube-controller-manager "$KUBERNETES_VERSION")
helm_bin=$(bin_path helm "$HELM_VERSION")

# A cached binary counts only if it is executable and answers --version
# (helm spells it `helm version`). Checks run in parallel to keep the
# cached path well under a second.
works() {
  local bin=$1
  [[ -x $bin ]] || return 1
  case $(basename "$bin") in
    helm) "$bin" version --short >/dev/null 2>&1 ;;
    *) "$bin" --version >/dev/null 2>&1 ;;
  esac
}

declare -A ok=()
all_ok() { [[ ${ok[etcd]} == 1 && ${ok[kube-apiserver]} == 1 && ${ok[kube-controller-manager]} == 1 && ${ok[helm]} == 1 ]]; }
check_all() {
  local pids=() names=(etcd kube-apiserver kube-controller-manager helm)
  local bins=("$etcd_bin" "$apiserver_bin" "$kcm_bin" "$helm_bin") i
  for i in "${!bins[@]}"; do works "${bins[$i]}" & pids[i]=$!; done
  for i in "${!bins[@]}"; do
    if wait "${pids[$i]}"; then ok[${names[$i]}]=1; else ok[${names[$i]}]=0; fi
  done
}
check_all
if all_ok; then
  log "cached: etcd $ETCD_VERSION, kube-apiserver/kube-controller-manager $KUBERNETES_VERSION, helm $HELM_VERSION ($tools_dir)"
  exit 0
fi

# Something to build: one builder at a time, then look again.
mkdir -p "$tools_dir"
# shellcheck source=lib.sh
. "$here/lib.sh"
take_build_lock "$tools_dir/.build.lock" log
check_all
if all_ok; then
  log "built meanwhile by another run: nothing to do"
  exit 0
fi

command -v go >/dev/null 2>&1 || [[ -x /usr/local/go/bin/go ]] || die "go not found (need Go >= 1.26 on PATH or at /usr/local/go/bin)"
command -v go >/dev/null 2>&1 || PATH=/usr/local/go/bin:$PATH
# etcd $ETCD_VERSION and helm $HELM_VERSION declare `go 1.26.0`; toolchain downloads are off (GOTOOLCHAIN=local).
gov=$(go env GOVERSION) || die "go env GOVERSION failed"
[[ $gov =~ ^go1\.([0-9]+) ]] && ((BASH_REMATCH[1] >= 26)) || die "need Go >= 1.26, found $gov"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off
log "using $(go version)"

mkdir -p "$src_root"

# new_wrapper <dir> <go-directive> [godebug-line]: fresh wrapper module in <dir>.
new_wrapper() {
  local dir=$1 godirective=$2 godebug=${3:-}
  rm -rf "$dir"
  mkdir -p "$dir"
  {
    printf 'module apigw-syncer.test/tools/%s\n\ngo %s\n' "$(basename "$dir")" "$godirective"
    if [[ -n $godebug ]]; then printf '\n%s\n' "$godebug"; fi
  } >"$dir/go.mod"
}

# go_build <dir> <out> <pkg> [ldflags...]: build pkg into out (atomically) from the wrapper module in dir.
go_build() {
  local dir=$1 out=$2 pkg=$3 extra=${4:-} start=$SECONDS
  log "building $pkg -> $out (this takes minutes on a cold cache)"
  mkdir -p "$(dirname "$out")"
  (cd "$dir" && go build -trimpath -ldflags="-s -w $extra" -o "$out.tmp" "$pkg") \
    || die "go build $pkg failed (wrapper module: $dir)"
  mv -f "$out.tmp" "$out"
  works "$out" || die "$out was built but does not answer --version"
  log "built $(basename "$out") in $((SECONDS - start)) s"
}

# ---------------------------------------------------------------- etcd
if [[ ${ok[etcd]} != 1 ]]; then
  dir=$src_root/etcd-$ETCD_VERSION
  new_wrapper "$dir" 1.26.0
  (cd "$dir" && go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION") || die "go mod edit (etcd) failed"
  go_build "$dir" "$etcd_bin" go.etcd.io/etcd/server/v3
fi

# ---------------------------------------------------------------- kubernetes
if [[ ${ok[kube-apiserver]} != 1 || ${ok[kube-controller-manager]} != 1 ]]; then
  kv=$KUBERNETES_VERSION
  [[ $kv =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "KUBERNETES_VERSION must look like v1.N.M, got $kv"
  staging_version=v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}
  log "downloading k8s.io/kubernetes@$kv go.mod"
  kmod=$(GOFLAGS= go mod download -json "k8s.io/kubernetes@$kv" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [[ -n $kmod && -f $kmod ]] || die "could not download k8s.io/kubernetes@$kv"
  # Staging modules: every `k8s.io/x => ./staging/src/k8s.io/x` replace in kubernetes's go.mod.
  mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$kmod")
  ((${#staging[@]} > 10)) || die "found only ${#staging[@]} staging replaces in $kmod; go.mod format changed?"
  godirective=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$kmod")
  godebug=$(grep -E '^godebug ' "$kmod" || true)
  dir=$src_root/kubernetes-$kv
  new_wrapper "$dir" "${godirective:-1.25.0}" "$godebug"
  edits=(-require="k8s.io/kubernetes@$kv")
  for m in "${staging[@]}"; do edits+=(-replace="$m=$m@$staging_version"); done
  (cd "$dir" && go mod edit "${edits[@]}") || die "go mod edit (kubernetes) failed"
  log "wrapper module with ${#staging[@]} staging replaces -> $staging_version"
  minor=${kv#v1.}; minor=${minor%%.*}
  vpkg=k8s.io/component-base/version
  vflags="-X $vpkg.gitVersion=$kv -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
  [[ ${ok[kube-apiserver]} == 1 ]] || go_build "$dir" "$apiserver_bin" k8s.io/kubernetes/cmd/kube-apiserver "$vflags"
  [[ ${ok[kube-controller-manager]} == 1 ]] || go_build "$dir" "$kcm_bin" k8s.io/kubernetes/cmd/kube-controller-manager "$vflags"
fi

# ---------------------------------------------------------------- helm
if [[ ${ok[helm]} != 1 ]]; then
  dir=$src_root/helm-$HELM_VERSION
  new_wrapper "$dir" 1.26.0
  (cd "$dir" && go mod edit -require="helm.sh/helm/v3@$HELM_VERSION") || die "go mod edit (helm) failed"
  go_build "$dir" "$helm_bin" helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
fi

log "ready: etcd $ETCD_VERSION, kube-apiserver/kube-controller-manager $KUBERNETES_VERSION, helm $HELM_VERSION ($tools_dir)"
