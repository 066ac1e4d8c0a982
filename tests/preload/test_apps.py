"""iperf3 and redis-benchmark under `ivmc exec`, short runs (issue 17). Each asserts that the
bytes went through the ring (the library's counters of both processes) and that they match
what the client itself reports. Exit 77 (ctest: skipped) when the program is not installed.

    test_apps.py IVMC iperf3|redis"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from app_support import Host, free_port, read_stats, start_server, stop_server  # noqa: E402

SKIP = 77


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)


def iperf3(ivmc, reverse):
    with Host(ivmc) as host:
        port = free_port()
        server, server_stats = start_server(host, ["iperf3", "-s", "-1", "-p", str(port)], port)
        argv, env, client_stats = host.command(
            ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", "1", "-J"] +
            (["-R"] if reverse else []))
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        server.wait(30)
        check(out.returncode == 0, f"iperf3 client exit {out.returncode}: {out.stderr[-500:]}")
        report = json.loads(out.stdout)["end"]
        sent, received = report["sum_sent"]["bytes"], report["sum_received"]["bytes"]
        c, s = read_stats(client_stats), read_stats(server_stats)
        print("client counters", c, "server counters", s, "iperf3:", sent, received)
        # iperf3 stops the reader at the end: what was in flight then is sent, not received.
        check(0 < received <= sent, f"iperf3 sent {sent} and received {received} bytes")
        check(c.get("ring_connections", 0) >= 2 and s.get("ring_connections", 0) >= 2,
              "the control and the data connection are rings on both sides")
        writer, reader = (s, c) if reverse else (c, s)
        # The data plus the control connection's few kB (JSON results exchanged at the end).
        slack = 256 * 1024
        check(sent <= writer["ring_bytes_sent"] <= sent + slack,
              f"the writer's ring bytes {writer['ring_bytes_sent']} match iperf3's {sent}")
        # The reader also drains what was in flight when iperf3 stopped counting.
        check(received <= reader["ring_bytes_received"] <= sent + slack,
              f"the reader's ring bytes {reader['ring_bytes_received']} lie between iperf3's "
              f"received {received} and sent {sent} bytes")


def redis(ivmc):
    requests = 20000
    with Host(ivmc) as host:
        port = free_port()
        server, server_stats = start_server(
            host, ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                   "--bind", "127.0.0.1"], port)
        try:
            argv, env, client_stats = host.command(
                ["redis-benchmark", "-p", str(port), "-t", "set,get", "-n", str(requests),
                 "-c", "10", "-P", "4", "--csv"])
            out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        finally:
            stop_server(server)
        check(out.returncode == 0, f"redis-benchmark exit {out.returncode}: {out.stderr[-500:]}")
        rows = [line.split('","') for line in out.stdout.splitlines() if line.startswith('"')]
        rps = {r[0].strip('"'): float(r[1].strip('"')) for r in rows[1:]}
        print("redis-benchmark:", rps)
        check(rps.get("SET", 0) > 0 and rps.get("GET", 0) > 0, "SET and GET requests per second")
        c, s = read_stats(client_stats), read_stats(server_stats)
        print("client counters", c, "server counters", s)
        check(c.get("ring_connections", 0) >= 10, "the benchmark's 10 connections are rings")
        # RESP without -r: SET key:__rand_int__ xxx is 45 bytes, GET key:__rand_int__ 36; the
        # replies +OK\r\n 5 and $3\r\nxxx\r\n 9. The benchmark's CONFIG GETs first add < 1 kB.
        want_sent = requests * (45 + 36)
        want_replies = requests * (5 + 9)
        check(want_sent <= c["ring_bytes_sent"] <= want_sent + 4096,
              f"the client's ring bytes {c['ring_bytes_sent']} are its {2 * requests} requests "
              f"({want_sent} bytes)")
        check(s["ring_bytes_received"] == c["ring_bytes_sent"],
              "the server read from rings what the client wrote")
        check(want_replies <= c["ring_bytes_received"] <= want_replies + 4096,
              f"the client's ring bytes received {c['ring_bytes_received']} are the replies "
              f"({want_replies} bytes)")


def main():
    ivmc, which = sys.argv[1], sys.argv[2]
    program = {"iperf3": "iperf3", "redis": "redis-benchmark"}[which]
    for p in [program] + (["redis-server"] if which == "redis" else []):
        if shutil.which(p) is None:
            print(f"SKIP: {p} is not installed (scripts/deps.sh test installs it)")
            return SKIP
    if which == "iperf3":
        iperf3(ivmc, reverse=False)
        iperf3(ivmc, reverse=True)
    else:
        redis(ivmc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
