#!/usr/bin/python3
"""One race or update-period study on several backends, side by side (issue 14).

Runs `ivmc sweep SCENARIO --backend B --param KEY=V1,V2,... --seeds N --out OUT/B` for each
backend (a sweep that was interrupted resumes where it stopped: run the same command again),
then prints one table: per parameter value, each metric's mean over the seeds on each backend,
with the seeds' range when they differ, over the seeds every backend made (a real backend
refuses a seed whose draws it cannot play; the table says which seeds it left out). The scenario file, the parameter values, the seeds and
the result columns are the same on every backend; only where the scenario runs differs.

    scripts/race_backends.py scenarios/examples/kvm_migration.toml \
        --param membership.period_ms=500,2000,5000 --seeds 2 --backends sim,host,kvm --out rb

    scripts/race_backends.py ... --table-only     # print the table of what OUT already holds

Every real-backend run boots guests (about 30-40 s for a KVM point, 3-5 min for a Xen one
under TCG); progress is `ivmc sweep`'s own. Exit status: 2 for bad input, 1 if a sweep fails
(the table is still printed for the backends that have results).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_METRICS = [
    "race_exposure",
    "sends_in_race_window",
    "race_operations",
    "race_errors",
    "w0_local_share",
    "frames_remote",
    "pending_bytes",
    "lost_bytes",
    "migration_s_mean",
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", help='a scenario file, "default" or "preset:NAME"')
    p.add_argument("--param", required=True, help="KEY=V1,V2,...: the one parameter swept")
    p.add_argument("--seeds", type=int, default=1, help="seeds per point (default 1)")
    p.add_argument("--backends", default="sim,host", help="comma-separated (sim,host,kvm,xen)")
    p.add_argument("--out", required=True, help="output directory: one sweep per backend in it")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="scenario changes")
    p.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help="results.csv columns")
    p.add_argument("--table-only", action="store_true", help="run nothing; print OUT's table")
    p.add_argument("--ivmc", default=os.environ.get("IVMC", str(ROOT / "build/release/cli/ivmc")))
    a = p.parse_args()
    if "=" not in a.param or not a.param.split("=", 1)[1]:
        p.error(f"--param {a.param!r}: expected KEY=V1,V2,...")
    if a.seeds < 1:
        p.error("--seeds must be at least 1")
    a.backends = [b for b in a.backends.split(",") if b]
    a.metrics = [m for m in a.metrics.split(",") if m]
    if not a.backends:
        p.error("--backends is empty")
    if not a.table_only and not os.access(a.ivmc, os.X_OK):
        p.error(f"no ivmc at {a.ivmc} (build it, or set IVMC=/path/to/ivmc)")
    return a


def run_sweep(a: argparse.Namespace, backend: str) -> bool:
    cmd = [a.ivmc, "sweep", a.scenario, "--backend", backend, "--param", a.param,
           "--seeds", str(a.seeds), "--out", str(Path(a.out) / backend)]
    if a.set:
        cmd += ["--set", *a.set]
    print("$ " + " ".join(cmd), flush=True)
    rc = subprocess.call(cmd)
    if rc == 2:
        print(f"race_backends: {backend}: input refused (above)", file=sys.stderr)
    return rc == 0


def load(out: Path, backend: str, key: str) -> pd.DataFrame | None:
    """The backend's rows with the parameter's value per row, or None if it has none."""
    csv, meta = out / backend / "results.csv", out / backend / "meta.json"
    if not csv.exists() or not meta.exists():
        return None
    params = json.loads(meta.read_text()).get("params", [])
    keys = [p["key"] for p in params]
    if keys != [key]:
        raise SystemExit(f"race_backends: {meta} sweeps {keys}, not [{key!r}]: use another --out")
    values = params[0]["values"]
    df = pd.read_csv(csv)
    df[key] = [values[int(p)] for p in df["point"]]
    return df


def cell(series: pd.Series) -> str:
    v = pd.to_numeric(series, errors="coerce").dropna()
    if v.empty:
        return "-"
    fmt = (lambda x: f"{x:.3g}") if v.abs().max() < 1000 else (lambda x: f"{x:,.0f}")
    mean = fmt(v.mean())
    if len(v) > 1 and not math.isclose(v.min(), v.max(), rel_tol=1e-9, abs_tol=1e-12):
        return f"{mean} ({fmt(v.min())}-{fmt(v.max())})"
    return mean


def table(a: argparse.Namespace) -> int:
    key, values = a.param.split("=", 1)
    out = Path(a.out)
    frames = {b: load(out, b, key) for b in a.backends}
    have = [b for b in a.backends if frames[b] is not None]
    if not have:
        print(f"race_backends: no results under {out}", file=sys.stderr)
        return 1
    for m in a.metrics:
        missing = [b for b in have if m not in frames[b].columns]
        if missing:
            print(f"race_backends: no column {m!r} in {', '.join(missing)}", file=sys.stderr)
            return 2
    # The same runs on every backend: per value, only the seeds every backend made. A real
    # backend refuses a seed whose generator draws migrations closer together than it can play
    # (`ivmc sweep` makes the others and lists those in meta.json's "refused"); the simulator
    # plays it, and comparing it there would compare other migrations.
    left_out = []
    for v in values.split(","):
        common = None
        for b in have:
            seeds = set(frames[b].loc[frames[b][key] == v, "seed"])
            common = seeds if common is None else common & seeds
        for b in have:
            at_v = frames[b][key] == v
            extra = sorted(set(frames[b].loc[at_v, "seed"]) - common)
            if extra:
                left_out.append(f"{b} {key}={v} seed(s) {', '.join(map(str, extra))}")
            frames[b] = frames[b][~at_v | frames[b]["seed"].isin(common)]
    print(f"\n{a.scenario}, {key} swept, {a.seeds} seed(s); mean over seeds (range)\n")
    if left_out:
        print("Only the seeds every backend made are compared; left out (refused or not made on "
              "another backend): " + "; ".join(left_out) + "\n")
    for m in a.metrics:
        print(f"{m}:\n")
        print("| " + key + " | " + " | ".join(have) + " |")
        print("|---" * (len(have) + 1) + "|")
        for v in values.split(","):
            row = [cell(frames[b].loc[frames[b][key] == v, m]) for b in have]
            print(f"| {v} | " + " | ".join(row) + " |")
        print()
    return 0


def main() -> int:
    a = parse_args()
    ok = True
    if not a.table_only:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        for b in a.backends:
            ok = run_sweep(a, b) and ok
    rc = table(a)
    return rc if rc else (0 if ok else 1)


if __name__ == "__main__":
    sys.exit(main())
