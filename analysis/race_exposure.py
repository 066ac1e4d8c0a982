#!/usr/bin/python3
"""Race-window exposure and race errors versus the co-residency scan period T.

Reads a sweep over `membership.period_ms` (optionally also `membership.detection`, one series
per policy) and draws four panels: sends inside race windows per migration with the closed form
lambda*T/2 of periodic scanning overlaid; the same as a share of all sends
(`race_exposure`) with its closed form migrations*T/(2*duration); race errors per migration;
and membership probes per simulated second, the cost of a short period. Points are means over
the seeds with 95 % confidence intervals. Also writes race_exposure.csv / .md.

The closed form (docs/race-exposure.md): a VM that migrates learns of its move at the next scan
on its new host, on average T/2 later, and its sends (Poisson, rate lambda) inside that window
number lambda*T/2. lambda is --rate if given, else the measured rate of the workloads from or to
a VM that migrates (meta.json's scenario names them: w<i>_messages_per_s summed), else, with a
warning, sends / duration_s (which assumes the migrating VM makes all the sends).

Example:
  ivmc sweep scenarios/examples/race_exposure.toml --param membership.period_ms=10,20,50,100,200 \\
      --param membership.detection=periodic,adaptive --seeds 3 --jobs 2 --out /tmp/race
  /usr/bin/python3 analysis/race_exposure.py /tmp/race --out docs/figures
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

import common

X = "membership.period_ms"
DETECTION = "membership.detection"
NEEDED = [X, "sends", "sends_in_race_window", "migrations", "race_errors"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=float, default=None, metavar="LAMBDA",
                   help="send rate of the migrating VM, 1/s (default: sends / duration_s)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="simulated seconds of each run (default: the duration_s column or "
                        "meta.json's scenario)")
    p.add_argument("--name", default="race_exposure", help="output file name stem")


def migrating_rate(res: common.Results, df: pd.DataFrame) -> pd.Series | None:
    """lambda per row: the measured rate of the operations that can race, those of the
    workloads from or to a VM that migrates (a migrate event or generator names it), summed;
    None without a scenario (meta.json) or those columns."""
    sc = res.scenario or {}
    vms = [v.get("name") for v in sc.get("vm", [])]
    migrating = {e.get("vm") for e in sc.get("event", []) if e.get("kind") == "migrate"}
    for g in sc.get("generator", []):
        if g.get("kind") == "migrate":
            migrating |= set(g.get("vms") or vms)
    columns = []
    for i, w in enumerate(sc.get("workload", [])):
        if w.get("from") in migrating or w.get("to") in migrating:
            c = f"w{i}_messages_per_s"
            columns.append(c if c in df.columns else f"w{i}_transactions_per_s")
    if not columns or any(c not in df.columns for c in columns):
        return None
    return df[columns].astype(float).sum(axis=1)


def plot(res: common.Results, args: argparse.Namespace) -> None:
    res.require(NEEDED, "the race-exposure figure")
    df = res.df.copy()
    if args.duration is not None:
        df["_duration"] = args.duration
    elif "duration_s" in df.columns:
        df["_duration"] = df["duration_s"].astype(float)
    else:
        duration = res.setting("duration_s")
        if duration is None:
            raise common.AnalysisError(
                f"{res.directory}: results.csv lacks column duration_s and there is no "
                "meta.json scenario to read it from; give --duration SECONDS")
        df["_duration"] = float(duration)
    if args.rate is not None:
        df["_lambda"] = args.rate
    else:
        rate = migrating_rate(res, df)
        if rate is not None:
            df["_lambda"] = rate
        else:
            print("race_exposure: warning: no scenario in meta.json names the migrating VMs' "
                  "workloads; lambda = sends / duration_s, which assumes the migrating VM makes "
                  "every send (give --rate LAMBDA otherwise)", file=sys.stderr)
            df["_lambda"] = df["sends"] / df["_duration"]
    lam = float(df["_lambda"].mean())

    with np.errstate(divide="ignore", invalid="ignore"):
        migrations = df["migrations"].where(df["migrations"] > 0)
        df["window_sends_per_migration"] = df["sends_in_race_window"] / migrations
        df["race_errors_per_migration"] = df["race_errors"] / migrations
    df["share"] = df["sends_in_race_window"] / df["sends"].where(df["sends"] > 0)
    if "membership_probes" in df.columns:
        df["probes_per_s"] = df["membership_probes"] / df["_duration"]
    df["_T"] = df[X].astype(float)

    series = res.varying(exclude=[X])
    if DETECTION in series:  # the detection policy first in the legend
        series = [DETECTION] + [s for s in series if s != DETECTION]

    panels = [("window_sends_per_migration", "sends in race windows per migration",
               "sends in race windows\nper migration (frames)"),
              ("share", "share of all sends made in race windows (race_exposure)",
               "share of sends (fraction)"),
              ("race_errors_per_migration", "race errors per migration",
               "race errors per migration (count)")]
    if "probes_per_s" in df.columns:
        panels.append(("probes_per_s", "cost: membership probes per simulated second",
                       "membership probes (1/s)"))
    fig, axes = common.new_figure(ncols=2, nrows=(len(panels) + 1) // 2, width=6.2, height=4.4)
    flat = axes.ravel()
    for ax in flat[len(panels):]:
        ax.set_visible(False)

    t_values = common.sorted_values(df["_T"])
    t_grid = np.geomspace(min(t_values), max(t_values), 200) if min(t_values) > 0 else \
        np.linspace(min(t_values), max(t_values), 200)
    duration = float(df["_duration"].mean())
    mean_migrations = float(df["migrations"].mean())
    detection_default = res.setting(DETECTION, "periodic")

    groups = common.groups(df, series)
    markers = "osD^vP*X"
    xlabel = common.axis_label(X)
    if DETECTION in df.columns and (df[DETECTION] == "adaptive").any():
        xlabel = "scan period T (ms; adaptive: its initial period)"
    for panel_index, (metric, title, ylabel) in enumerate(panels):
        ax = flat[panel_index]
        for gi, (key, part) in enumerate(groups):
            stats = common.mean_ci(part, ["_T"], metric)
            label = common.series_label(series, key) if series else \
                f"detection={detection_default} (measured)"
            ax.errorbar(stats["_T"], stats["mean"], yerr=stats["ci95"], marker=markers[gi % 8],
                        capsize=4, linewidth=1.6, markersize=6, label=label)
        if metric == "window_sends_per_migration":
            ax.plot(t_grid, lam * t_grid / 1e3 / 2, "k--", linewidth=1.3,
                    label=f"closed form \u03bbT/2, periodic scan (\u03bb={lam:.0f}/s)")
        elif metric == "share":
            ax.plot(t_grid, mean_migrations * t_grid / 1e3 / (2 * duration), "k--",
                    linewidth=1.3,
                    label=f"closed form m\u00b7T/(2\u00b7duration), m={mean_migrations:.1f}")
        ax.set_title(title, fontsize=11)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_xscale("log")
        ax.set_xticks(t_values)
        ax.set_xticklabels([f"{t:g}" for t in t_values])
        ax.minorticks_off()
        if metric in ("window_sends_per_migration", "share", "probes_per_s"):
            positive = df[metric][df[metric] > 0]
            if len(positive):
                common.log_axis(ax)
        else:
            ax.set_ylim(bottom=0)
        common.style_axis(ax)
        ax.legend(fontsize=8, loc="best")

    fig.suptitle(f"Race-window exposure vs scan period T "
                 f"({mean_migrations:.1f} migrations per {duration:g} s run; "
                 f"{common.ci_note(res)})", fontsize=12)
    fig.tight_layout()
    common.save_figure(fig, args.out, args.name)

    rows = []
    for key, part in groups:
        for t, sub in part.groupby("_T", sort=True):
            row = dict(zip(series, key))
            w = common.mean_ci(sub, [], "window_sends_per_migration").iloc[0]
            row.update({
                "T_ms": t, "seeds": len(sub), "migrations": sub["migrations"].mean(),
                "window_sends_per_migration": w["mean"], "ci95": w["ci95"],
                "closed_form_lambda_T_over_2": lam * t / 1e3 / 2,
                "race_exposure": sub["share"].mean(),
                "closed_form_share": sub["migrations"].mean() * t / 1e3
                / (2 * sub["_duration"].mean()),
                "race_errors": sub["race_errors"].mean(),
            })
            if "probes_per_s" in sub.columns:
                row["probes_per_s"] = sub["probes_per_s"].mean()
            rows.append(row)
    table = pd.DataFrame(rows)
    common.write_table(table, args.out, args.name)


if __name__ == "__main__":
    raise SystemExit(common.main(__doc__, plot, add_arguments))
