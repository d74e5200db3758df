#!/usr/bin/env bash
# Runs a command beside CPU burners, one busy Node process per core (BURNERS overrides the
# count): the machine a loaded node gives the sidecar, on purpose. The command's exit status is
# this script's; the burners are stopped however it ends.
#   bash test/tooling/beside-burners.sh npx tap dist/test/check-faults.test.js
set -uo pipefail
count=${BURNERS:-$(nproc)}
burners=()
stop_burners() {
  if ((${#burners[@]} > 0)); then
    kill "${burners[@]}" 2>/dev/null
    wait "${burners[@]}" 2>/dev/null
  fi
  burners=()
}
trap stop_burners EXIT
trap 'exit 130' INT TERM
for ((i = 0; i < count; i++)); do
  node -e 'for (;;);' &
  burners+=($!)
done
"$@"
