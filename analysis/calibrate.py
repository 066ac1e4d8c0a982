#!/usr/bin/python3
"""`ivmc calibrate`: fit the simulator's cost model to a real backend, and check the fit.

  ivmc calibrate --backend host [--out PROFILE.toml]
      measures a fixed set of cases on the host backend (`ivmc run --backend host`): channel
      streams and request/response at 64 B-64 KiB per notification policy (polling, on_demand),
      the remote path (loopback TCP) and the wake-up latency (a paced stream's median latency);
      then fits the model's parameters by least squares on log(model / measured), the model
      being the simulator itself (`ivmc run --backend sim`, every case of a group in one run on
      hosts of their own), with scipy; and writes a cost profile (docs/costs.md, "Cost
      profiles") with its provenance.
  ivmc calibrate --check [--profile P] [--json]
      measures held-out cases (other sizes, the other policies, offered rates, two concurrent
      workloads) on the host backend and compares them with the simulator under profile P
      (default: the built-in "host"): predicted against measured per case, |error|, median and
      max, and whether each pair of paths is ordered as measured.

This module is also the fitter's library (tests/python/test_calibrate_fit.py fits synthetic
measurements made by the simulator from known parameters and checks it recovers them).
Python is /usr/bin/python3 with Debian's python3-scipy.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KIB = 1024


class CalibrationError(Exception):
    pass


# ------------------------------------------------------------------------------------------
# Cases: one workload between two VMs of one host, measured on a backend and predicted by the
# simulator. A case's group is the scenario-wide setting it needs (notify policy, or the remote
# path with the channel off); every case of a group is simulated in one run.


@dataclass(frozen=True)
class Case:
    name: str
    kind: str            # tcp_stream | tcp_rr
    size: int            # message bytes
    path: str            # polling | on_demand | spin_then_block | per_packet | remote
    metric: str          # mbps | tps | lat_us (a paced stream's median latency)
    rate: float = 0.0    # paced messages per second (0: as fast as it goes)
    concurrent: int = 1  # how many identical workloads run at once between the pair
    # cases compared pairwise for order: same comparison group, different path
    order_group: str = ""

    @property
    def unit(self) -> str:
        return {"mbps": "Mb/s", "tps": "trans/s", "lat_us": "us"}[self.metric]


def _c(kind, size, path, metric, rate=0.0, concurrent=1, group=True) -> Case:
    what = {"tcp_stream": "stream", "tcp_rr": "rr"}[kind]
    name = f"{what} {path} {size} B"
    if rate:
        name += f" at {rate:g}/s"
    if concurrent > 1:
        name += f" x{concurrent} concurrent"
    name += {"mbps": "", "tps": "", "lat_us": " latency p50"}[metric]
    og = f"{what} {size} {metric} {rate:g} {concurrent}" if group else ""
    return Case(name, kind, size, path, metric, rate, concurrent, og)


def fit_cases() -> list[Case]:
    out = []
    for path in ("polling", "on_demand", "remote"):
        for size in (64, 1 * KIB, 16 * KIB, 64 * KIB):
            out.append(_c("tcp_stream", size, path, "mbps"))
        for size in (64, 16 * KIB, 64 * KIB):
            out.append(_c("tcp_rr", size, path, "tps"))
    # the wake-up latency: a paced stream of small messages, each finding its receiver asleep
    out.append(_c("tcp_stream", 64, "on_demand", "lat_us", rate=2000))
    out.append(_c("tcp_stream", 64, "polling", "lat_us", rate=2000))
    return out


def check_cases() -> list[Case]:
    out = []
    for path in ("polling", "on_demand", "spin_then_block", "per_packet", "remote"):
        for size in (256, 4 * KIB):
            out.append(_c("tcp_stream", size, path, "mbps"))
        out.append(_c("tcp_rr", 1 * KIB, path, "tps"))
    for path in ("on_demand", "polling", "remote"):
        out.append(_c("tcp_stream", 1 * KIB, path, "lat_us", rate=5000))
    for path in ("on_demand", "remote"):
        out.append(_c("tcp_stream", 16 * KIB, path, "mbps", concurrent=2))
    return out


# ------------------------------------------------------------------------------------------
# Scenarios


def _scenario(cases: list[Case], path: str, duration: float, warmup: float,
              hosts_per_case: bool) -> str:
    """One scenario for `cases` (all of one path): each case a pair of VMs, on a host of its own
    when `hosts_per_case` (the simulator), else all on host 0 (the host backend, one case)."""
    notify = "on_demand" if path == "remote" else path
    lines = [
        'name = "calibrate"',
        f"duration_s = {duration}",
        f"warmup_s = {warmup}",
        "[platform]",
        f"hosts = {len(cases) if hosts_per_case else 1}",
        "[channel]",
        f"enabled = {'false' if path == 'remote' else 'true'}",
        "layer = 1",
        "ring_kib = 256",
        f'notify = "{notify}"',
        "[membership]",
        'detection = "static"',
    ]
    for i, c in enumerate(cases):
        h = i if hosts_per_case else 0
        lines += ["[[vm]]", f'name = "a{i}"', f"host = {h}", "[[vm]]", f'name = "b{i}"',
                  f"host = {h}"]
    for i, c in enumerate(cases):
        for _ in range(c.concurrent):
            lines += ["[[workload]]", f'kind = "{c.kind}"', f'from = "a{i}"', f'to = "b{i}"',
                      f"message_bytes = {c.size}"]
            if c.rate:
                lines.append(f"rate_per_s = {c.rate}")
    return "\n".join(lines) + "\n"


def _value(row: dict[str, str], c: Case, first: int) -> float:
    """The case's metric from a results row; its workloads are w<first>...w<first+n-1>."""
    vals = []
    for w in range(first, first + c.concurrent):
        key = {"mbps": f"w{w}_mbps", "tps": f"w{w}_transactions_per_s",
               "lat_us": f"w{w}_latency_p50_us"}[c.metric]
        if key not in row or row[key] in ("", "nan"):
            raise CalibrationError(f"results have no {key} for case {c.name!r}")
        vals.append(float(row[key]))
    if c.metric == "lat_us":
        return statistics.mean(vals)
    return sum(vals)


def run_ivmc(ivmc: Path, text: str, backend: str, sets: list[str], tmp: Path,
             timeout: float) -> dict[str, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    scen = tmp / "scenario.toml"
    scen.write_text(text)
    out = tmp / "out"
    cmd = [str(ivmc), "run", str(scen), "--quiet", "--force", "--out", str(out),
           "--backend", backend]
    for s in sets:
        cmd += ["--set", s]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CalibrationError(f"{shlex.join(cmd)} did not finish in {timeout:.0f} s")
    except OSError as e:
        raise CalibrationError(f"cannot run {ivmc}: {e}")
    if proc.returncode != 0:
        raise CalibrationError(f"{shlex.join(cmd)} failed (exit {proc.returncode}): "
                               f"{proc.stderr.strip()[-2000:]}")
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != 1:
        raise CalibrationError(f"{out / 'results.csv'}: expected one row, got {len(rows)}")
    return rows[0]


# ------------------------------------------------------------------------------------------
# The model: the simulator, one run per path group.

SIM_DURATION = 0.02
SIM_WARMUP = 0.002


class Simulator:
    def __init__(self, ivmc: Path, cases: list[Case], tmp: Path):
        self.ivmc, self.cases, self.tmp = ivmc, cases, tmp
        self.groups: dict[str, list[Case]] = {}
        for c in cases:
            self.groups.setdefault(c.path, []).append(c)
        self.runs = 0

    def predict(self, sets: list[str]) -> dict[str, float]:
        """Every case's model value under `sets` (costs.NAME=VALUE, costs.profile=...)."""
        out: dict[str, float] = {}
        procs = []
        for path, group in self.groups.items():
            text = _scenario(group, path, SIM_DURATION, SIM_WARMUP, hosts_per_case=True)
            procs.append((group, run_ivmc(self.ivmc, text, "sim", sets,
                                          self.tmp / f"sim-{path}", timeout=600)))
            self.runs += 1
        for group, row in procs:
            w = 0
            for c in group:
                out[c.name] = _value(row, c, w)
                w += c.concurrent
        return out


# ------------------------------------------------------------------------------------------
# The fit: least squares on log(model / measured) over log(parameter).

# The parameters fitted for the host backend, with their bounds (ns, ns/B, or a share).
HOST_PARAMS: dict[str, tuple[float, float, float]] = {
    # name: (start, lower, upper)
    "shm_per_record_ns": (150, 5, 1e5),
    "shm_copy_ns_per_byte": (0.12, 1e-3, 10),
    "shm_doorbell_ns": (1500, 10, 1e5),
    "shm_poll_detect_ns": (150, 5, 1e5),
    "irq_ns": (1200, 10, 1e5),
    "wakeup_latency_ns": (10000, 100, 1e6),
    "syscall_ns": (1000, 10, 1e5),
    "copy_ns_per_byte": (0.12, 1e-3, 10),
    "tcp_per_packet_ns": (1000, 10, 1e6),
    "loopback_latency_ns": (10000, 100, 1e6),
    "poll_cpu_share": (0.7, 0.02, 1.0),
    "sched_slice_ns": (100000, 100, 2e7),
}
# Fixed for the host backend: its remote path is loopback TCP, in 64 KiB packets.
HOST_FIXED = {"remote_loopback": 1, "gso_bytes": 65536, "socket_buffer_bytes": 4 << 20}


def _sets(params: dict[str, float], fixed: dict[str, float]) -> list[str]:
    return [f"costs.{k}={v:.6g}" for k, v in {**fixed, **params}.items()]


def fit(sim: Simulator, measured: dict[str, float], params: dict[str, tuple[float, float, float]],
        fixed: dict[str, float], progress=None, max_nfev: int = 40) -> tuple[dict[str, float], dict[str, float]]:
    """Least squares in log space: minimise sum over cases of log(model / measured)^2 over
    x = log(parameter), within the bounds. Returns the parameters and the model's values."""
    import numpy as np
    from scipy.optimize import least_squares

    names = list(params)
    x0 = np.log([params[n][0] for n in names])
    lo = np.log([params[n][1] for n in names])
    hi = np.log([params[n][2] for n in names])
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
    cases = [c for c in sim.cases if c.name in measured]
    cache: dict[tuple, dict[str, float]] = {}
    evals = [0]

    def model(x) -> dict[str, float]:
        key = tuple(np.round(x, 9))
        if key not in cache:
            cache[key] = sim.predict(_sets(dict(zip(names, np.exp(x))), fixed))
            evals[0] += 1
        return cache[key]

    def residuals(x):
        m = model(x)
        r = np.array([math.log(max(m[c.name], 1e-9) / measured[c.name]) for c in cases])
        if progress:
            progress(evals[0], float(np.sqrt(np.mean(r * r))))
        return r

    res = least_squares(residuals, x0, bounds=(lo, hi), method="trf", diff_step=0.05,
                        x_scale=1.0, max_nfev=max_nfev)
    best = dict(zip(names, (float(v) for v in np.exp(res.x))))
    return best, model(res.x)


# ------------------------------------------------------------------------------------------
# Measuring on a backend


def measure(ivmc: Path, cases: list[Case], backend: str, reps: int, duration: float,
            tmp: Path, progress) -> dict[str, tuple[float, list[float]]]:
    """Each case `reps` times (interleaved, so a burst of load hits every case alike); the
    median and every value."""
    vals: dict[str, list[float]] = {c.name: [] for c in cases}
    total = reps * len(cases)
    n = 0
    for r in range(reps):
        for c in cases:
            n += 1
            text = _scenario([c], c.path, duration, duration / 5, hosts_per_case=False)
            row = run_ivmc(ivmc, text, backend, [], tmp / "measure", timeout=120)
            vals[c.name].append(_value(row, c, 0))
            progress(f"measured {n}/{total}: {c.name}: {vals[c.name][-1]:.4g} {c.unit}")
    return {k: (statistics.median(v), v) for k, v in vals.items()}


# ------------------------------------------------------------------------------------------
# The profile file


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def machine_facts() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ncpu = os.cpu_count() or 0
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return {
        "machine": f"{platform.node()}, Linux {platform.release()}, {ncpu} CPUs",
        "cpu": cpu,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ivmc_commit": commit or "unknown",
        "load": load,
    }


def write_profile(path: Path, name: str, backend: str, facts: dict[str, str],
                  params: dict[str, float], fixed: dict[str, float], cases: list[Case],
                  measured: dict[str, float], model: dict[str, float], reps: int) -> tuple[float, float]:
    res = [abs(math.log(model[c.name] / measured[c.name])) for c in cases]
    med, mx = statistics.median(res), max(res)
    out = [
        f"# A cost profile written by `ivmc calibrate --backend {backend}` (docs/costs.md, "
        "\"Cost profiles\").",
        f"name = {_toml_str(name)}",
        f"description = {_toml_str(f'the {backend} backend on this machine, fitted by ivmc calibrate')}",
        "",
        "[provenance]",
        f"machine = {_toml_str(facts['machine'])}",
        f"cpu = {_toml_str(facts['cpu'])}",
        f"date = {_toml_str(facts['date'])}",
        f"ivmc_commit = {_toml_str(facts['ivmc_commit'])}",
        f"backend = {_toml_str(backend)}",
        f"method = {_toml_str(f'scipy least_squares (trf) on log(model / measured) over log(parameter); model = the simulator ({SIM_DURATION} s per group); measured = the median of {reps} runs per case')}",
        f"load = {_toml_str('load average at the end: ' + facts['load'])}",
        "# |log(model / measured)| over the fitted measurements",
        f"residual_median = {med:.4f}",
        f"residual_max = {mx:.4f}",
    ]
    for c in cases:
        out += ["", "[[provenance.measurement]]", f"name = {_toml_str(c.name)}",
                f"unit = {_toml_str(c.unit)}", f"measured = {measured[c.name]:.6g}",
                f"model = {model[c.name]:.6g}"]
    out += ["", "[costs]"]
    for k, v in {**fixed, **params}.items():
        out.append(f"{k} = {float(v):.6g}")
    path.write_text("\n".join(out) + "\n")
    return med, mx


# ------------------------------------------------------------------------------------------
# Check


def order_pairs(cases: list[Case], measured: dict[str, float], predicted: dict[str, float]):
    """For every two cases of one comparison group on different paths: is the model's order the
    measured one? Higher is better for throughput, lower for latency."""
    out = []
    groups: dict[str, list[Case]] = {}
    for c in cases:
        if c.order_group:
            groups.setdefault(c.order_group, []).append(c)
    for g in groups.values():
        for i in range(len(g)):
            for j in range(i + 1, len(g)):
                a, b = g[i], g[j]
                m = measured[a.name] - measured[b.name]
                p = predicted[a.name] - predicted[b.name]
                out.append({"a": a.name, "b": b.name, "measured_a_over_b":
                            measured[a.name] / measured[b.name],
                            "predicted_a_over_b": predicted[a.name] / predicted[b.name],
                            "right": (m > 0) == (p > 0)})
    return out


def check(args, ivmc: Path, tmp: Path, progress) -> int:
    profile = args.profile or "host"
    cases = check_cases()
    progress(f"check: {len(cases)} held-out cases x {args.reps} runs on the {args.backend} "
             f"backend, then the simulator with costs.profile={profile}")
    meas = measure(ivmc, cases, args.backend, args.reps, args.duration, tmp, progress)
    sim = Simulator(ivmc, cases, tmp)
    pred = sim.predict([f"costs.profile={profile}"])
    rows = []
    for c in cases:
        m, all_m = meas[c.name]
        p = pred[c.name]
        rows.append({"case": c.name, "unit": c.unit, "measured": m, "runs": all_m,
                     "predicted": p, "error": p / m - 1})
    errs = [abs(r["error"]) for r in rows]
    pairs = order_pairs(cases, {k: v[0] for k, v in meas.items()}, pred)
    summary = {
        "profile": profile, "backend": args.backend, "cpu": machine_facts()["cpu"],
        "load": machine_facts()["load"], "cases": rows,
        "median_abs_error": statistics.median(errs), "max_abs_error": max(errs),
        "pairs": pairs, "pairs_right": sum(p["right"] for p in pairs), "pairs_total": len(pairs),
        "targets": {"median_abs_error": 0.15, "max_abs_error": 0.30, "all_orders_right": True},
    }
    summary["targets_met"] = (summary["median_abs_error"] <= 0.15 and
                              summary["max_abs_error"] <= 0.30 and
                              summary["pairs_right"] == summary["pairs_total"])
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    w = max(len(r["case"]) for r in rows)
    print(f"held-out cases, {args.backend} backend against the simulator with profile {profile} "
          f"(median of {args.reps} runs; CPU {summary['cpu']}; load {summary['load']})")
    print(f"{'case':<{w}}  {'measured':>10}  {'predicted':>10}  {'error':>7}  unit")
    for r in rows:
        print(f"{r['case']:<{w}}  {r['measured']:>10.4g}  {r['predicted']:>10.4g}  "
              f"{r['error']:>+7.1%}  {r['unit']}")
    print(f"median |error| {summary['median_abs_error']:.1%} (target <= 15%), "
          f"max |error| {summary['max_abs_error']:.1%} (target <= 30%)")
    print(f"pairs of paths ordered as measured: {summary['pairs_right']}/{summary['pairs_total']}")
    for p in pairs:
        if not p["right"]:
            print(f"  wrong order: {p['a']} / {p['b']}: measured {p['measured_a_over_b']:.3g}, "
                  f"predicted {p['predicted_a_over_b']:.3g}")
    return 0


# ------------------------------------------------------------------------------------------


def calibrate(args, ivmc: Path, tmp: Path, progress) -> int:
    cases = fit_cases()
    start = time.monotonic()
    progress(f"calibrate: {len(cases)} cases x {args.reps} runs of {args.duration:g} s on the "
             f"{args.backend} backend")
    meas = measure(ivmc, cases, args.backend, args.reps, args.duration, tmp, progress)
    measured = {k: v[0] for k, v in meas.items()}
    sim = Simulator(ivmc, cases, tmp)
    last = [0.0]

    def fit_progress(evals: int, rms: float):
        if time.monotonic() - last[0] > 5:
            last[0] = time.monotonic()
            progress(f"fitting: {evals} model evaluations, rms log error {rms:.3f}")

    progress(f"fitting {len(HOST_PARAMS)} parameters by least squares in log space (scipy)")
    params, model = fit(sim, measured, HOST_PARAMS, HOST_FIXED, fit_progress,
                        max_nfev=args.max_evals)
    out = Path(args.out) if args.out else Path("host-profile.toml")
    med, mx = write_profile(out, out.stem if args.out else "host", args.backend,
                            machine_facts(), params, HOST_FIXED, cases, measured, model,
                            args.reps)
    progress(f"done in {time.monotonic() - start:.0f} s")
    w = max(len(c.name) for c in cases)
    for c in cases:
        print(f"{c.name:<{w}}  measured {measured[c.name]:>10.4g}  model {model[c.name]:>10.4g}  "
              f"{model[c.name] / measured[c.name] - 1:>+7.1%}  {c.unit}")
    print(f"fit residuals |log(model / measured)|: median {med:.3f}, max {mx:.3f}")
    print(f"wrote {out}; use it with --set costs.profile={out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ivmc calibrate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--ivmc", type=Path, default=REPO / "build/release/cli/ivmc")
    ap.add_argument("--backend", default="host")
    ap.add_argument("--out", help="the profile file to write (default: ./host-profile.toml)")
    ap.add_argument("--check", action="store_true", help="the held-out check instead of a fit")
    ap.add_argument("--profile", help="with --check: the profile (name or file; default host)")
    ap.add_argument("--json", action="store_true", help="with --check: print JSON")
    ap.add_argument("--reps", type=int, default=3, help="runs per case (the median is used)")
    ap.add_argument("--duration", type=float, default=0.5, help="seconds per measured run")
    ap.add_argument("--max-evals", type=int, default=12, help="model evaluations in the fit")
    args = ap.parse_args(argv)
    if args.backend != "host":
        print(f"ivmc calibrate: backend {args.backend!r} is not calibrated yet; only host is "
              "(kvm and xen under TCG are future work: docs/costs.md)", file=sys.stderr)
        return 2
    if not args.ivmc.is_file():
        print(f"ivmc calibrate: {args.ivmc} not found", file=sys.stderr)
        return 2
    try:
        import scipy  # noqa: F401
    except ImportError:
        print("ivmc calibrate: needs Debian's python3-scipy (sudo apt-get install -y "
              "python3-scipy; README.md, Set-up)", file=sys.stderr)
        return 2

    def progress(msg: str):
        print(f"[calibrate] {msg}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="ivmc-calibrate-") as tmp:
        try:
            if args.check:
                return check(args, args.ivmc, Path(tmp), progress)
            return calibrate(args, args.ivmc, Path(tmp), progress)
        except CalibrationError as e:
            print(f"ivmc calibrate: {e}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
