#!/usr/bin/python3
"""Does the adaptive update period earn its name? Exposure against probes, against fixed periods.

For each migration rate, runs `ivmc sweep` of a race-exposure scenario with periodic scanning at
a range of fixed periods T, and with adaptive scanning, then places the adaptive point on the
exposure-against-probes plane next to the front the fixed periods trace (interpolated linearly
in log-log between neighbouring fixed points, where exposure x probes is about constant; beyond
the fixed points' probe range, extrapolated along the last segment).

A point is on the front when its exposure is at most the front's at the same probe rate, within
the seeds' noise: the printed `vs front` is adaptive exposure / front exposure, with the 95 %
interval of the adaptive mean (t distribution over seeds).

Usage:
  /usr/bin/python3 analysis/adaptive_front.py [--ivmc build/release/cli/ivmc]
      [--scenario scenarios/examples/race_exposure.toml] [--rates 0.1,0.5,1,2,5]
      [--rate-key generator.rate_per_s] [--periods 5,10,20,50,100,200,500,1000]
      [--seeds 4] [--duration 200] [--jobs 2]
      [--set KEY=VALUE ...] --out DIR [--json]

Exit status: 0, or 2 if the CLI is missing or a sweep fails.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

REPO = Path(__file__).resolve().parent.parent


def sweep(args, out: Path, detection: str, periods: list[str]) -> pd.DataFrame:
    cmd = [args.ivmc, "sweep", args.scenario]
    if args.rates:
        cmd += ["--param", f"{args.rate_key}={args.rates}"]
    cmd += ["--param", "membership.period_ms=" + ",".join(periods),
           "--seeds", str(args.seeds), "--jobs", str(args.jobs), "--out", str(out),
           "--set", f"membership.detection={detection}", f"duration_s={args.duration}"]
    cmd += args.set
    print("+", " ".join(cmd), file=sys.stderr)
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL)
    if r.returncode != 0:
        sys.exit(f"adaptive_front: sweep failed (exit {r.returncode}): {' '.join(cmd)}")
    return pd.read_csv(out / "results.csv")


def front_at(fixed: pd.DataFrame, probes: float) -> float:
    """Exposure of the fixed-period front at `probes` probes/s (log-log interpolation)."""
    f = fixed.sort_values("probes_per_s")
    x, y = np.log(f["probes_per_s"].to_numpy()), np.log(f["exposure"].to_numpy())
    lx = math.log(probes)
    if lx <= x[0]:
        i = 0
    elif lx >= x[-1]:
        i = len(x) - 2
    else:
        i = int(np.searchsorted(x, lx)) - 1
    slope = (y[i + 1] - y[i]) / (x[i + 1] - x[i])
    return float(math.exp(y[i] + slope * (lx - x[i])))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ivmc", default=str(REPO / "build/release/cli/ivmc"))
    ap.add_argument("--scenario", default=str(REPO / "scenarios/examples/race_exposure.toml"))
    ap.add_argument("--rates", default="0.1,0.5,1,2,5",
                    help="migration rates to sweep ('' : the scenario's own)")
    ap.add_argument("--rate-key", default="generator.rate_per_s")
    ap.add_argument("--periods", default="5,10,20,50,100,200,500,1000")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--duration", type=float, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE for every run")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not Path(args.ivmc).exists():
        print(f"adaptive_front: no CLI at {args.ivmc}: build first (scripts/main.sh)",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    fixed = sweep(args, args.out / "periodic", "periodic", args.periods.split(","))
    adaptive = sweep(args, args.out / "adaptive", "adaptive", ["100"])
    rows = []
    for df in (fixed, adaptive):
        df["probes_per_s"] = df["membership_probes"] / args.duration
        df["exposure"] = df["race_exposure"]
    rate_col = args.rate_key
    if not args.rates:  # one group: the scenario's own rates
        fixed[rate_col] = "scenario"
        adaptive[rate_col] = "scenario"
    fm = fixed.groupby([rate_col, "membership.period_ms"])[["probes_per_s", "exposure"]].mean()
    fm = fm.reset_index()
    for rate, a in adaptive.groupby(rate_col):
        f = fm[fm[rate_col] == rate]
        p, e = a["probes_per_s"].mean(), a["exposure"].mean()
        n = len(a)
        half = (stats.t.ppf(0.975, n - 1) * a["exposure"].std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        front = front_at(f, p)
        rows.append({"rate_per_s": rate, "adaptive_probes_per_s": p, "adaptive_exposure": e,
                     "exposure_ci95": half, "front_exposure": front, "vs_front": e / front,
                     "vs_front_low": (e - half) / front,
                     "on_or_beyond": bool((e - half) <= front),
                     "fixed": f[["membership.period_ms", "probes_per_s", "exposure"]]
                     .to_dict("records")})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'rate/s':>7} {'probes/s':>9} {'exposure':>10} {'+-95%':>9} {'front':>10} "
          f"{'vs front':>9}  verdict")
    for r in rows:
        verdict = "on or beyond" if r["on_or_beyond"] else "behind"
        print(f"{r['rate_per_s']:>7} {r['adaptive_probes_per_s']:>9.2f} "
              f"{r['adaptive_exposure']:>10.5f} {r['exposure_ci95']:>9.5f} "
              f"{r['front_exposure']:>10.5f} {r['vs_front']:>9.3f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
