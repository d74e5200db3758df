#!/bin/sh
# Reloads nginx when the content of the given files changes: the TLS certificates, mounted from
# Secrets that cert-manager renews (or a person rotates). nginx reads certificates only at start
# and on reload; the kubelet swaps a mounted Secret's files in place, all at once.
# Run it in the background by the container's shell right before that shell execs nginx:
#   sh reload-on-change.sh 10 /etc/apigw-tls/server/tls.crt ... & exec nginx -g 'daemon off;'
# Its parent is then the nginx master (exec keeps the pid), which it signals: SIGHUP, nginx's
# reload. A shell that stays and runs nginx as its child passes the master's pid instead:
#   nginx -g 'daemon off;' & NGINX_PID=$! sh reload-on-change.sh 10 ... &
# New workers take the new certificates; the old ones finish their requests and close their
# keep-alive connections, which the sidecars open again. A reload that fails (a key that
# does not match its certificate, a rotation read half-way) leaves nginx on the old files and
# logged; the next change reloads again. It stops when nginx is gone.
# Usage: [NGINX_PID=<pid>] reload-on-change.sh SECONDS FILE...
set -u

interval=${1:-}
case "$interval" in
  ''|*[!0-9]*) echo "reload-on-change.sh: SECONDS must be a whole number, got '$interval'" >&2; exit 2 ;;
esac
shift
[ "$#" -gt 0 ] || { echo "reload-on-change.sh: no file to watch" >&2; exit 2; }
master=${NGINX_PID:-$PPID}
case "$master" in
  ''|*[!0-9]*) echo "reload-on-change.sh: NGINX_PID must be a pid, got '$master'" >&2; exit 2 ;;
esac

# One checksum over every file (a missing file counts as empty: it shows as a change too).
state() { cat "$@" 2>/dev/null | cksum; }

last=$(state "$@")
while sleep "$interval"; do
  kill -0 "$master" 2>/dev/null || exit 0
  now=$(state "$@")
  [ "$now" = "$last" ] && continue
  last=$now
  echo "reload-on-change.sh: certificate files changed: reloading nginx (pid $master)" >&2
  kill -HUP "$master" || exit 0
done
