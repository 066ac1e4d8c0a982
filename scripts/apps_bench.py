#!/usr/bin/python3
"""Unmodified programs under `ivmc exec` against plain kernel TCP loopback, in the same run
(issue 17; BENCHMARKS.md "Unmodified applications (issue 17)"). Not a test: prints each
figure (the median of --repeats runs) for both paths and their ratio next to the issue's
target.

    scripts/apps_bench.py [--ivmc build/release/cli/ivmc] [--seconds 3] [--repeats 3]

iperf3 (one stream, -P 4, -R), sockperf ping-pong (p50 latency), redis-benchmark (SET and
GET, 50 connections). The ring runs also check the library's counters: a figure whose bytes
did not go through rings is refused."""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "preload"))
from app_support import Host, free_port, read_stats, start_server, stop_server  # noqa: E402


def run_client(host, argv, ring, timeout=300):
    argv, env, stats = host.command(argv, ring)
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{argv[-1]}: exit {out.returncode}: {out.stderr[-400:]}")
    if ring and read_stats(stats).get("ring_bytes_sent", 0) == 0:
        raise RuntimeError(f"{' '.join(argv)}: no bytes went through a ring")
    return out.stdout


def iperf3(host, ring, seconds, extra):
    port = free_port()
    server, _ = start_server(host, ["iperf3", "-s", "-1", "-p", str(port)], port, ring)
    try:
        out = run_client(host, ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t",
                                str(seconds), "-J"] + extra, ring)
    finally:
        server.wait(30)
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def sockperf(host, ring, seconds):
    port = free_port()
    server, _ = start_server(host, ["sockperf", "server", "--tcp", "-i", "127.0.0.1", "-p",
                                    str(port)], port, ring)
    try:
        out = run_client(host, ["sockperf", "ping-pong", "--tcp", "-i", "127.0.0.1", "-p",
                                str(port), "-t", str(seconds)], ring)
    finally:
        stop_server(server)
    m = re.search(r"percentile 50\.000 =\s+([0-9.]+)", out)
    return float(m.group(1))


def redis(host, ring, requests):
    port = free_port()
    server, _ = start_server(host, ["redis-server", "--port", str(port), "--save", "",
                                    "--appendonly", "no", "--bind", "127.0.0.1"], port, ring)
    try:
        out = run_client(host, ["redis-benchmark", "-p", str(port), "-t", "set,get", "-n",
                                str(requests), "--csv"], ring)
    finally:
        stop_server(server)
    rows = [line.split('","') for line in out.splitlines() if line.startswith('"')]
    return {r[0].strip('"'): float(r[1].strip('"')) for r in rows[1:]}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ivmc", default=os.path.join(here, "..", "build", "release", "cli", "ivmc"))
    p.add_argument("--seconds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--redis-requests", type=int, default=200000)
    a = p.parse_args()
    missing = [x for x in ("iperf3", "sockperf", "redis-server", "redis-benchmark")
               if shutil.which(x) is None]
    if missing:
        sys.exit(f"missing: {' '.join(missing)} (scripts/deps.sh test installs them)")
    rows = []  # (name, unit, ring, kernel, ratio, target text, met)

    def median(f):
        return statistics.median(f() for _ in range(a.repeats))

    with Host(os.path.abspath(a.ivmc)) as host:
        for name, extra in (("iperf3", []), ("iperf3 -P 4", ["-P", "4"]),
                            ("iperf3 -R", ["-R"])):
            r = median(lambda: iperf3(host, True, a.seconds, extra))
            k = median(lambda: iperf3(host, False, a.seconds, extra))
            rows.append((name, "Gbit/s", r, k, r / k, ">= 3x", r / k >= 3))
        r = median(lambda: sockperf(host, True, a.seconds))
        k = median(lambda: sockperf(host, False, a.seconds))
        rows.append(("sockperf ping-pong p50", "us", r, k, r / k, "<= 0.1x", r / k <= 0.1))
        rs = [redis(host, True, a.redis_requests) for _ in range(a.repeats)]
        ks = [redis(host, False, a.redis_requests) for _ in range(a.repeats)]
        for op in ("SET", "GET"):
            r = statistics.median(x[op] for x in rs)
            k = statistics.median(x[op] for x in ks)
            rows.append((f"redis-benchmark {op}", "req/s", r, k, r / k, ">= 1.5x", r / k >= 1.5))
    print(f"{'figure':<24} {'unit':<7} {'ivmc exec':>12} {'kernel TCP':>12} {'ratio':>7}  target")
    for name, unit, r, k, ratio, target, met in rows:
        print(f"{name:<24} {unit:<7} {r:>12.2f} {k:>12.2f} {ratio:>7.2f}  {target} "
              f"{'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
