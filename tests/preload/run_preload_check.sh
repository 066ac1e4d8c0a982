#!/usr/bin/env bash
# The byte-checked scenarios of preload_check.c under `ivmc exec`, with a host service of their
# own (a temporary socket), stopped at the end:
#   1. every in-process scenario (both ends under one `ivmc exec`: co-resident, trusted);
#   2. a listener of another trust group: the client falls back to kernel TCP, bytes checked;
#   3. a listener not under `ivmc exec` (not co-resident): kernel TCP, bytes checked.
# Usage: run_preload_check.sh IVMC PRELOAD_CHECK BASE_PORT
set -euo pipefail
ivmc=$1 check=$2 port=$3
dir=$(mktemp -d /tmp/ivmc-preload-check.XXXXXX)
host=$dir/host.sock
stop_service() {
  if [[ -f $host.lock ]]; then
    pid=$(tr -dc 0-9 <"$host.lock")
    [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap stop_service EXIT
export IVMC_PRELOAD_STATS=$dir/stats
exec_=("$ivmc" exec --host "$host")

echo "== in-process scenarios"
"${exec_[@]}" -- "$check" all "$port"
grep -q 'ring_connections=[1-9]' "$dir/stats" || { echo "FAIL: no ring connection counted"; exit 1; }

echo "== a listener of another trust group"
"${exec_[@]}" --group other -- "$check" serve $((port + 20)) &
server=$!
"${exec_[@]}" -- "$check" client $((port + 20)) kernel
wait $server

echo "== a listener that is not under ivmc exec"
"$check" serve $((port + 21)) &
server=$!
"${exec_[@]}" -- "$check" client $((port + 21)) kernel
wait $server

echo "== two separate ivmc exec processes"
"${exec_[@]}" -- "$check" serve $((port + 22)) &
server=$!
"${exec_[@]}" -- "$check" client $((port + 22)) ring
wait $server
echo "all passed"
