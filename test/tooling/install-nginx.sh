#!/usr/bin/env bash
# Installs Debian's nginx + the lua module (+ lua-cjson for the keyvals-shaped write
# endpoint) + the stream module (the Plus zone_sync server's TLS and access rules) for the
# real-nginx tests, and iproute2 (`ip`: the chart's pods each in a network namespace of its
# own). Runs on every `npm test`, so the common case — everything already there — must return
# in milliseconds and without root.
# The tests run their own nginx masters on 127.0.2.x; the distribution's service must
# never be started (it would bind 0.0.0.0:80 and outlive the test run).
set -euo pipefail

lua_mod=/usr/share/nginx/modules/ngx_http_lua_module.so
ndk_mod=/usr/share/nginx/modules/ndk_http_module.so
stream_mod=/usr/share/nginx/modules/ngx_stream_module.so

# cjson's .so lives in the multiarch lua 5.1 dir (LuaJIT speaks the 5.1 ABI).
have_cjson() { compgen -G '/usr/lib/*/lua/5.1/cjson.so' >/dev/null || [ -e /usr/lib/lua/5.1/cjson.so ]; }

have_ip() { command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ]; }

if command -v nginx >/dev/null 2>&1 && [ -e "$lua_mod" ] && [ -e "$ndk_mod" ] && [ -e "$stream_mod" ] && have_cjson && have_ip; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-nginx.sh: nginx/lua/ip missing and not root; install nginx libnginx-mod-http-lua libnginx-mod-stream lua-cjson iproute2" >&2
  exit 1
fi

# policy-rc.d exit 101 = "action forbidden": the package's postinst then skips
# `invoke-rc.d nginx start`. Only add it if none exists, and only remove our own.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
# Retry once after refreshing the index: a stale or empty list on a fresh machine is the
# usual cause of "Unable to locate package".
packages=(nginx libnginx-mod-http-lua libnginx-mod-stream lua-cjson iproute2)
if ! apt-get install "${apt_opts[@]}" --no-install-recommends "${packages[@]}"; then
  apt-get update -q
  apt-get install "${apt_opts[@]}" --no-install-recommends "${packages[@]}"
fi

# Belt and braces: if some init system started it anyway, stop and disable it.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now nginx >/dev/null 2>&1 || true
elif [ -e /run/nginx.pid ]; then
  kill "$(cat /run/nginx.pid)" 2>/dev/null || true
fi

command -v nginx >/dev/null && [ -e "$lua_mod" ] && [ -e "$ndk_mod" ] && [ -e "$stream_mod" ] && have_cjson && have_ip || {
  echo "install-nginx.sh: install finished but nginx/lua/stream/cjson/ip still missing" >&2
  exit 1
}
