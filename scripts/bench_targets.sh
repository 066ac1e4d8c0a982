#!/usr/bin/env bash
# The targets of issue 18 from RUNS runs of `ivmc bench --json` (default 3): one markdown table,
# a row per target ratio with each run's value and the median, then per run the load average
# just before it and its throughput runs' speed modes. BENCHMARKS.md ("Issue 18: the two speed
# modes and the same-run targets") takes its table from this output.
#
#   scripts/bench_targets.sh            # 3 runs with the bench's defaults (about 30 s each, quiet)
#   scripts/bench_targets.sh 5
#   IVMC=/path/to/ivmc BENCH_ARGS="--repeats 3" scripts/bench_targets.sh 1
#
# Every ratio is the bench's own (its `ratios` object): figures of one run, round trips from
# paired rounds. A run's speed mode is its throughput runs' `speed` ("full": both processes had
# their CPUs; "shared") and `placement` ("near": cache-line probe within 1.5x of the run's
# fastest; "far"), counted per run; the 64 KiB copying ratio is also given per mode present.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
IVMC=${IVMC:-build/release/cli/ivmc}
BENCH_ARGS=${BENCH_ARGS:-}
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "usage: scripts/bench_targets.sh [RUNS]" >&2; exit 2; }
[ -x "$IVMC" ] || { echo "bench_targets: no $IVMC (build it: cmake --build --preset release --target ivmc)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A run that fails (on a loaded machine a peer can miss its deadlines) is tried once more; the
# table's notes say so, with the first attempt's last error line.
: >"$work/notes"
for i in $(seq 1 "$RUNS"); do
  for attempt in 1 2; do
    cut -d' ' -f1 /proc/loadavg >"$work/load.$i"
    echo "bench_targets: run $i of $RUNS (load $(cat "$work/load.$i"))" >&2
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of options
    if "$IVMC" bench --json $BENCH_ARGS >"$work/run.$i.json" 2>"$work/err.$i"; then break; fi
    cat "$work/err.$i" >&2
    [ "$attempt" = 2 ] && { echo "bench_targets: run $i failed twice" >&2; exit 1; }
    echo "run $i was tried twice: the first attempt failed ($(tail -n1 "$work/err.$i"))" >>"$work/notes"
  done
done

/usr/bin/python3 - "$work" "$RUNS" "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" <<'PY'
import json, statistics, sys

work, runs, commit = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = [json.load(open(f"{work}/run.{i}.json")) for i in range(1, runs + 1)]
loads = [open(f"{work}/load.{i}").read().strip() for i in range(1, runs + 1)]

# (ratio key in the bench's JSON, what the table says, target)
TARGETS = [
    ("poll_rtt_over_iceoryx", "64 B polled RTT / iceoryx 64 B RTT", "<= 1.0"),
    ("zero_copy_gbps_64k_over_iceoryx", "64 KiB GB/s, zero-copy / iceoryx", ">= 1.0"),
    ("poll_gbps_64k_over_memcpy_1m", "64 KiB GB/s, copying / memcpy 1 MiB", ">= 0.5"),
    ("poll_rtt_48_over_cacheline", "48 B polled RTT / cache-line RTT", "<= 2.0"),
    ("poll_rtt_56_over_cacheline", "56 B polled RTT / cache-line RTT", "<= 2.0"),
    ("poll_rtt_over_bare", "64 B polled RTT / bare two-line ring RTT", "<= 1.1"),
    ("poll_msgs_64_over_iceoryx", "64 B msg/s, polled / iceoryx", ">= 1.0"),
    ("block_rtt_over_eventfd", "blocking 64 B RTT / raw eventfd RTT", "<= 1.15"),
]

def fmt(v):
    return "n/a" if v is None else f"{v:.2f}"

def met(v, target):
    op, bound = target.split()
    return v <= float(bound) if op == "<=" else v >= float(bound)

def modes(d):  # the run's throughput runs by speed mode
    counts = {}
    for r in d["runs"]:
        key = f'{r["speed"]}/{r.get("placement", "?")}'
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))

m = data[0]["machine"]
print(f'CPU: {m["model_name"]}{" (" + m["hypervisor"] + " guest)" if m["hypervisor"] else ""}, '
      f'{m["online_cpus"]} CPUs; `ivmc bench --json` x {runs} at {commit}')
print()
head = " | ".join(f"run {i}" for i in range(1, runs + 1))
print(f"| target | {head} | median | met? |")
print("|---|" + "---|" * runs + "---|---|")
rows = list(TARGETS)
by_mode = sorted({k for d in data for k in d.get("poll_gbps_64k_over_memcpy_1m_by_mode", {})})
for mode in by_mode:
    rows.append((f"by_mode:{mode}", f"64 KiB GB/s, copying / memcpy 1 MiB, runs {mode}", ">= 0.5"))
for key, label, target in rows:
    values = []
    for d in data:
        if key.startswith("by_mode:"):
            values.append(d.get("poll_gbps_64k_over_memcpy_1m_by_mode", {}).get(key[8:]))
        else:
            values.append((d["ratios"].get(key) or {}).get("value"))
    have = [v for v in values if v is not None]
    med = statistics.median(have) if have else None
    verdict = "n/a" if med is None else ("yes" if met(med, target) else "**no**")
    print(f"| {label} ({target}) | " + " | ".join(fmt(v) for v in values) + f" | {fmt(med)} | {verdict} |")
print()
print("| run | load before | iceoryx | cache-line RTT | bare ring RTT | speed modes of its throughput runs |")
print("|---|---|---|---|---|---|")
for i, d in enumerate(data, 1):
    print(f'| {i} | {loads[i - 1]} | {d["iceoryx"]} | {d["cacheline_rtt_ns"]:.0f} ns | '
          f'{d.get("bare_rtt_ns", 0):.0f} ns | {modes(d)} |')
for line in open(f"{work}/notes"):
    print(f"\n{line.strip()}")
PY
