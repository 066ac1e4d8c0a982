#!/usr/bin/python3
"""Shared-memory pool utilisation, static_equal versus proportional allocation.

Reads a sweep over `pool.allocation` (static_equal, proportional) and whatever else was swept
(the first other varying parameter is the x axis; without one, bars per allocation) and draws
pool_utilisation (the mean fraction of the pools' chunks allocated, over time and over every
host's pool), pool_refusals (establishments refused for lack of room; a sender retries, so one
pair left out counts many times) and each --extra metric (default: stream_mbps), one line per
allocation policy (and per combination of any further varying parameters). Points are means
over the seeds with 95 % confidence intervals. Also writes pool.csv / .md.

Example:
  ivmc sweep scenarios/examples/pool.toml --param pool.max_pairs=2,4,8,16 \\
      --param pool.allocation=static_equal,proportional --seeds 2 --jobs 2 --out /tmp/pool
  /usr/bin/python3 analysis/pool.py /tmp/pool --out docs/figures --extra stream_mbps,w0_latency_p50_us
"""

from __future__ import annotations

import argparse

import pandas as pd

import common

ALLOC = "pool.allocation"
TITLES = {
    "pool_utilisation": ("pool utilisation", "allocated fraction of the pool"),
    "pool_refusals": ("establishments refused for lack of room", "refusals (count per run)"),
    "stream_mbps": ("total stream throughput", "throughput (Mb/s)"),
    "rr_transactions_per_s": ("request/response rate", "transactions (1/s)"),
    "pool_renewals": ("channel resizes (inflate/deflate)", "resizes (count per run)"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--x", default=None, metavar="KEY",
                   help="the swept parameter on the x axis (default: the first varying one "
                        "other than pool.allocation)")
    p.add_argument("--extra", default="stream_mbps",
                   help="comma-separated further metrics, one panel each (default: stream_mbps; "
                        "'' for none)")
    p.add_argument("--name", default="pool", help="output file name stem")


def title_of(res: common.Results, metric: str) -> tuple[str, str]:
    if metric in TITLES:
        return TITLES[metric]
    import re

    m = re.match(r"^w(\d+)_(.*)$", metric)
    unit = "Mb/s" if metric.endswith("_mbps") else common.unit_of(metric) or \
        ("1/s" if metric.endswith("_per_s") else "fraction" if metric.endswith("_share") else "")
    if m:
        what = (m.group(2).replace("latency_p", "one-way latency p").replace("rtt_p", "round trip p")
                .replace("_us", "").replace("_mbps", " throughput").replace("_", " "))
        return (f"{res.workload_label(int(m.group(1)))}: {what}",
                f"{what} ({unit})" if unit else what)
    return metric, f"{metric} ({unit})" if unit else metric


def plot(res: common.Results, args: argparse.Namespace) -> None:
    extras = [e.strip() for e in args.extra.split(",") if e.strip()]
    metrics = ["pool_utilisation", "pool_refusals"] + [e for e in extras if e not in
                                                         ("pool_utilisation", "pool_refusals")]
    res.require([ALLOC] + metrics, "the pool figure")
    df = res.df.copy()
    if "pool.enabled" in df.columns:
        df = df[df["pool.enabled"].astype(bool)]
    elif res.setting("pool.enabled", True) is False:
        raise common.AnalysisError(
            f"{res.directory}: the scenario has pool.enabled = false, so there is no pool to "
            "measure (set --set pool.enabled=true when sweeping)")
    if args.x:
        res.require([args.x], "the pool figure's x axis (--x)")
    varying = res.varying(exclude=[ALLOC])
    x = args.x or (varying[0] if varying else None)
    series = [ALLOC] + [v for v in varying if v != x]
    ncols = min(len(metrics), 3)
    nrows = (len(metrics) + ncols - 1) // ncols
    fig, axes = common.new_figure(ncols=ncols, nrows=nrows, width=5.4, height=4.3)
    flat = axes.ravel()
    for ax in flat[len(metrics):]:
        ax.set_visible(False)
    groups = common.groups(df, series)
    colours = {"static_equal": "tab:blue", "proportional": "tab:orange"}
    palette = iter(["tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink"] * 4)
    rows = []
    for ax, metric in zip(flat, metrics):
        for gi, (key, part) in enumerate(groups):
            label = common.series_label(series, key)
            colour = colours.get(key[0]) if len(series) == 1 else None
            if colour is None:
                colour = next(palette)
            if x:
                st = common.mean_ci(part, [x], metric)
                ax.errorbar(st[x].astype(float), st["mean"], yerr=st["ci95"], marker="os^D"[gi % 4],
                            color=colour, capsize=3, linewidth=1.7, markersize=6, label=label)
            else:
                st = common.mean_ci(part, [], metric)
                ax.bar([gi], st["mean"], yerr=st["ci95"], color=colour, capsize=4, label=label)
            for _, r in st.iterrows():
                rows.append({**dict(zip(series, key)), **({x: r[x]} if x else {}),
                             "metric": metric, "mean": r["mean"], "ci95": r["ci95"],
                             "seeds": int(r["n"])})
        title, ylabel = title_of(res, metric)
        ax.set_title(title, fontsize=11)
        ax.set_ylabel(ylabel)
        if metric == "pool_utilisation" or metric.endswith("_share"):
            ax.set_ylim(0, 1.05)
        else:
            top = (df.groupby(series + ([x] if x else []))[metric].max()).max()
            ax.set_ylim(0, top * 1.12 if top > 0 else 1)
        if x:
            xs = common.sorted_values(df[x].astype(float))
            if min(xs) > 0 and max(xs) / min(xs) >= 8:
                ax.set_xscale("log", base=2)
                ax.minorticks_off()
            ax.set_xticks(xs)
            ax.set_xticklabels([f"{v:g}" for v in xs])
            ax.set_xlabel(common.axis_label(x))
        else:
            ax.set_xticks(range(len(groups)))
            ax.set_xticklabels([common.series_label(series, k) for k, _ in groups], fontsize=8)
        common.style_axis(ax)
        ax.legend(fontsize=8, loc="best")
    hosts = res.setting("platform.hosts")
    pool = res.setting("pool.pool_mib")
    detail = ", ".join(p for p in [f"{pool:g} MiB pool per host" if pool else "",
                                   f"utilisation averaged over {hosts} hosts' pools"
                                   if hosts and int(hosts) > 1 else ""] if p)
    fig.suptitle(f"Shared-memory pool: static_equal vs proportional allocation"
                 f"{' (' + detail + ')' if detail else ''}\n{common.ci_note(res)}", fontsize=12)
    fig.tight_layout()
    common.save_figure(fig, args.out, args.name)
    common.write_table(pd.DataFrame(rows), args.out, args.name)


if __name__ == "__main__":
    raise SystemExit(common.main(__doc__, plot, add_arguments))
