#!/usr/bin/python3
"""Notifications per message versus the ATW batch N and window t (MemPipe's adaptive
time window: notify once per N messages, or when the oldest unnotified one waited t).

Reads a sweep over `channel.atw_batch` and/or `channel.atw_window_us` with channel.notify=atw
and draws data notifications per frame sent (data_notifications / sends) against N (or t, if
only t is swept), one line per value of the other, with the 1/N line of "one notification per
full batch" for reference. When the results hold a latency or throughput of workload 0, a
second row of panels shows what the batching costs. Any other swept parameter (an offered
rate, say) gets its own column of panels. Points are means over the seeds with 95 %
confidence intervals. Also writes notifications.csv / .md.

Example:
  ivmc sweep scenarios/examples/xenloop_pair.toml --set channel.notify=atw \\
      --set workload.arrivals=poisson --param workload.rate_per_s=0,20000 \\
      --param channel.atw_batch=1,2,4,8,16,32,64 --param channel.atw_window_us=10,100,1000 \\
      --seeds 2 --jobs 2 --out /tmp/atw
  /usr/bin/python3 analysis/notifications.py /tmp/atw --out docs/figures
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

import common

N = "channel.atw_batch"
T = "channel.atw_window_us"
NOTIFY = "channel.notify"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cost", default="auto",
                   help="metric for the second row (default: w0_latency_p50_us, else "
                        "w0_rtt_p50_us, else w0_mbps; 'none' for no second row)")
    p.add_argument("--name", default="notifications", help="output file name stem")


def plot(res: common.Results, args: argparse.Namespace) -> None:
    res.require(["data_notifications", "sends"], "notifications per message")
    swept = [c for c in (N, T) if c in res.df.columns]
    if not swept:
        raise common.AnalysisError(
            f"{res.directory / 'results.csv'} lacks column(s) {N}, {T}: sweep at least one "
            f"(--param {N}=1,4,16 --param {T}=10,100)")
    df = res.df.copy()
    if NOTIFY in df.columns and (df[NOTIFY] != "atw").any():
        print("note: only the rows with channel.notify=atw are drawn", flush=True)
        df = df[df[NOTIFY] == "atw"]
        if df.empty:
            raise common.AnalysisError(f"{res.directory}: no rows with channel.notify=atw")
    elif NOTIFY not in df.columns and res.setting(NOTIFY, "atw") != "atw":
        print(f"warning: the scenario's channel.notify is {res.setting(NOTIFY)!r}, not atw: "
              "N and t have no effect", flush=True)
    x = N if N in res.varying() or T not in res.varying() else T
    line = T if x == N and T in res.varying() else (N if x == T and N in res.varying() else None)
    panels = res.varying(exclude=[N, T, NOTIFY])
    df["per_frame"] = df["data_notifications"] / df["sends"].where(df["sends"] > 0)

    cost = None
    if args.cost != "none":
        options = [args.cost] if args.cost != "auto" else \
            ["w0_latency_p50_us", "w0_rtt_p50_us", "w0_mbps"]
        cost = next((c for c in options if c in df.columns and df[c].notna().any()), None)
        if args.cost not in ("auto", "none") and cost is None:
            raise common.AnalysisError(f"{res.directory / 'results.csv'} lacks column "
                                       f"{args.cost} (--cost)")
    panel_groups = common.groups(df, panels)
    nrows = 2 if cost else 1
    fig, axes = common.new_figure(ncols=len(panel_groups), nrows=nrows, width=6.0, height=4.4)
    xs = common.sorted_values(df[x].astype(float))
    rows = []
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    markers = "os^Dv*"
    for col, (pkey, pdf) in enumerate(panel_groups):
        where = common.series_label(panels, pkey) if panels else ""
        for gi, (lkey, ldf) in enumerate(common.groups(pdf, [line] if line else [])):
            label = common.value_label(line, lkey[0]) if line else "measured"
            for row, metric in enumerate(["per_frame"] + ([cost] if cost else [])):
                st = common.mean_ci(ldf, [x], metric)
                axes[row][col].errorbar(st[x].astype(float), st["mean"], yerr=st["ci95"],
                                        marker=markers[gi % 6], color=palette[gi % 6],
                                        capsize=3, linewidth=1.6, markersize=5, label=label)
            st = common.mean_ci(ldf, [x], "per_frame")
            extra = common.mean_ci(ldf, [x], cost) if cost else None
            for i, r in st.iterrows():
                entry = {**dict(zip(panels, pkey)), **({line: lkey[0]} if line else {}),
                         x: r[x], "notifications_per_frame": r["mean"], "ci95": r["ci95"],
                         "seeds": int(r["n"])}
                if extra is not None:
                    entry[cost] = extra.loc[i, "mean"]
                rows.append(entry)
        ax = axes[0][col]
        if x == N:
            grid = np.array(xs, dtype=float)
            ax.plot(grid, 1 / grid, "k:", linewidth=1.2, label="1/N (one per full batch)")
        common.log_axis(ax)
        ax.set_ylabel("data notifications per frame sent")
        ax.set_title("notifications per message" + (f"\n{where}" if where else ""), fontsize=11)
        if cost:
            c = axes[1][col]
            unit = "Mb/s" if cost.endswith("_mbps") else "\u00b5s"
            what = {"w0_latency_p50_us": "median one-way latency",
                    "w0_rtt_p50_us": "median round-trip time",
                    "w0_mbps": "throughput"}.get(cost, cost)
            c.set_ylabel(f"{what} ({unit})")
            c.set_title(f"what it costs: {what} of w0" + (f"\n{where}" if where else ""),
                        fontsize=11)
            values = df[cost][df[cost] > 0]
            if len(values) and values.max() / values.min() > 20:
                common.log_axis(c)
            else:
                c.set_ylim(bottom=0)
        for r in range(nrows):
            a = axes[r][col]
            a.set_xscale("log", base=2 if x == N else 10)
            a.set_xticks(xs)
            a.set_xticklabels([f"{v:g}" for v in xs])
            a.minorticks_off()
            a.set_xlabel(common.axis_label(x))
            common.style_axis(a)
            a.legend(fontsize=8, loc="best")
    fig.suptitle(f"ATW notification batching: notifications per message vs "
                 f"{'N' if x == N else 't'} ({common.ci_note(res, 'data_notifications')})",
                 fontsize=12)
    fig.tight_layout()
    common.save_figure(fig, args.out, args.name)
    common.write_table(pd.DataFrame(rows), args.out, args.name)


if __name__ == "__main__":
    raise SystemExit(common.main(__doc__, plot, add_arguments))
