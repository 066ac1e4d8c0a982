#!/usr/bin/env bash
# The simulator at scale (issue 19): runs the generated scenarios of scripts/scale_scenario.py
# at the issue's sizes and prints, per size, the median wall time, peak RSS and simulated
# events per wall second, then the ratio of peak RSS at 10,000 VMs between 3600 s and 60 s
# simulated. BENCHMARKS.md ("Simulation at scale (issue 19)") records its output.
#
#   scripts/scale_bench.sh                 # every size, 2 runs each (the 1 h run once)
#   RUNS=3 scripts/scale_bench.sh
#   SIZES="100:60 1000:60" scripts/scale_bench.sh
#   IVMC=/path/to/ivmc scripts/scale_bench.sh   # another build (e.g. a baseline)
#
# "events" are the simulator's own: callbacks run from its event queue (sim::Model::events,
# the `events` column of results.csv and the summary's last line), not SimGrid's activities.
# Wall, CPU (user + system) and peak RSS are the whole `ivmc run` process's (/usr/bin/time),
# loading included. On a shared machine wall time includes waiting for a CPU: the CPU seconds
# and M events per CPU second are the figures that compare across loads.
set -euo pipefail
cd "$(dirname "$0")/.."
IVMC=${IVMC:-build/release/cli/ivmc}
RUNS=${RUNS:-2}
LONG_RUNS=${LONG_RUNS:-1} # runs at 3600 s simulated (about 5 minutes each)
SIZES=${SIZES:-"100:60 1000:60 2000:60 1000:900 100:3600 1000:3600"}
[ -x "$IVMC" ] || { echo "scale_bench: no $IVMC (build it: cmake --build --preset release --target ivmc)" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "scale_bench: needs /usr/bin/time (Debian: time)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $IVMC ($(git rev-parse --short HEAD 2>/dev/null || echo '?') checked out)"
printf '%-7s %-7s %-9s %5s %9s %8s %11s %10s %12s %12s\n' hosts VMs simulated runs wall_s cpu_s peak_MiB events M_events/s M_ev/cpu_s
declare -A rss_at
for size in $SIZES; do
  hosts=${size%%:*}
  dur=${size##*:}
  scen="$work/scale-$hosts-$dur.toml"
  /usr/bin/python3 scripts/scale_scenario.py --hosts "$hosts" --duration "$dur" >"$scen"
  n=$RUNS
  [ "${dur%.*}" -ge 3600 ] && n=$LONG_RUNS
  : >"$work/walls" && : >"$work/rss" && : >"$work/rates" && : >"$work/cpus" && : >"$work/cpurates"
  events=0
  for ((i = 0; i < n; i++)); do
    /usr/bin/time -f '%e %M %U %S' -o "$work/time" "$IVMC" run "$scen" >"$work/out" 2>"$work/err" || {
      echo "scale_bench: ivmc run failed for $hosts hosts, $dur s:" >&2
      tail -5 "$work/err" >&2
      exit 1
    }
    read -r wall rss_kib user sys <"$work/time"
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')
    echo "$cpu" >>"$work/cpus"
    line=$(grep -E '^ +[0-9]+ events in ' "$work/out" | tail -1)
    events=$(awk '{print $1}' <<<"$line")
    awk -v e="$events" -v c="$cpu" 'BEGIN {printf "%.3f\n", e / c / 1e6}' >>"$work/cpurates"
    echo "$wall" >>"$work/walls"
    echo "$rss_kib" >>"$work/rss"
    # Events per second of the whole process's wall time (loading included), as the issue's
    # table computed them.
    awk -v e="$events" -v w="$wall" 'BEGIN {printf "%.3f\n", e / w / 1e6}' >>"$work/rates"
  done
  wall=$(median <"$work/walls")
  rss=$(median <"$work/rss")
  rate=$(median <"$work/rates")
  cpu=$(median <"$work/cpus")
  cpurate=$(median <"$work/cpurates")
  rss_at[$size]=$rss
  printf '%-7s %-7s %-9s %5s %9.1f %8.1f %11.0f %10s %12s %12s\n' "$hosts" "$((hosts * 10))" "${dur} s" "$n" \
    "$wall" "$cpu" "$(awk -v k="$rss" 'BEGIN {print k / 1024}')" "$events" "$rate" "$cpurate"
done
if [ -n "${rss_at[1000:60]:-}" ] && [ -n "${rss_at[1000:3600]:-}" ]; then
  awk -v a="${rss_at[1000:60]}" -v b="${rss_at[1000:3600]}" \
    'BEGIN {printf "peak RSS at 10,000 VMs, 3600 s / 60 s simulated: %.3f (target within 10%%)\n", b / a}'
fi
