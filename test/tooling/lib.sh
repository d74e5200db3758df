# Shared by the tooling scripts that build or fetch into the tools cache (sourced, not run).

# take_build_lock <lock file> <log function>: one builder per cache entry at a time (parallel CI
# jobs, a developer's second shell). Waits, saying so, while another run holds it; fd 9 keeps the
# lock until the calling script exits. The caller then looks again: the other run may have built it.
take_build_lock() {
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$1"
  if ! flock -n 9; then
    "$2" "another run holds $1 (building); waiting for it"
    flock 9
  fi
}

# module_dir <module@version> <work dir>: downloads a Go module (its zip, checked against the
# checksum database) outside any module, and prints its directory in the module cache.
module_dir() {
  local dir
  dir=$(cd "$2" && GOFLAGS= GOWORK=off go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -n $dir && -d $dir ]] || return 1
  printf '%s' "$dir"
}
