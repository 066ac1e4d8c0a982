#!/usr/bin/python3
"""Write the scale scenario of issue 19 as TOML on stdout.

    scripts/scale_scenario.py --hosts 1000 --duration 3600 > /tmp/scale.toml
    build/release/cli/ivmc run /tmp/scale.toml

The shape the issue measured: 10 VMs per host; one workload per 10 VMs (a rate-limited TCP
stream between the first two VMs of each host, co-resident at the start) at 100 messages a
second; Poisson migrations at 0.001 per second per VM, each to another host chosen uniformly.
Everything else is the embedded default scenario's (periodic scan every 100 ms, resolution,
layer-3 channel with 256 KiB rings). `scripts/scale_bench.sh` runs it at the issue's sizes.
"""

import argparse
import sys


def scenario(hosts, vms_per_host, duration_s, rate, migration_rate, message_bytes, seed):
    vms = hosts * vms_per_host
    out = [
        f'name = "scale-{hosts}h-{vms}vm-{duration_s:g}s"',
        f'description = "issue 19 scale: {hosts} hosts, {vms_per_host} VMs per host, one '
        f'{rate:g} msg/s stream per {vms_per_host} VMs, migrations {migration_rate:g}/s per VM"',
        f"duration_s = {duration_s:g}",
        "warmup_s = 0",
        f"seed = {seed}",
        "",
        "[platform]",
        f"hosts = {hosts}",
        "",
    ]
    for h in range(hosts):
        for k in range(vms_per_host):
            out += ["[[vm]]", f'name = "h{h}v{k}"', f"host = {h}", "ram_mib = 256", ""]
    # One workload per vms_per_host VMs: a stream from each host's first VM to its second.
    for h in range(hosts):
        out += [
            "[[workload]]",
            'kind = "tcp_stream"',
            f'from = "h{h}v0"',
            f'to = "h{h}v1"',
            f"message_bytes = {message_bytes}",
            f"rate_per_s = {rate:g}",
            "",
        ]
    if hosts > 1 and migration_rate > 0:
        # Every VM is a candidate (vms = []), so the generator's rate is the per-VM rate times
        # the number of VMs.
        out += [
            "[[generator]]",
            'kind = "migrate"',
            f"rate_per_s = {migration_rate * vms:g}",
            "vms = []",
            "",
        ]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--vms-per-host", type=int, default=10)
    ap.add_argument("--duration", type=float, default=60.0, help="simulated seconds")
    ap.add_argument("--rate", type=float, default=100.0, help="messages per second per workload")
    ap.add_argument("--migration-rate", type=float, default=0.001, help="per VM per second")
    ap.add_argument("--message-bytes", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.hosts < 1 or a.vms_per_host < 2 or a.duration <= 0:
        ap.error("need hosts >= 1, vms-per-host >= 2, duration > 0")
    sys.stdout.write(
        scenario(a.hosts, a.vms_per_host, a.duration, a.rate, a.migration_rate,
                 a.message_bytes, a.seed) + "\n")


if __name__ == "__main__":
    main()
