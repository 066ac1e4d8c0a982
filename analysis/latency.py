#!/usr/bin/python3
"""Latency percentiles of request/response workloads versus a swept parameter.

Reads the round-trip percentiles `w<i>_rtt_p<P>_us` of every request/response workload in the
results (with --stream, the one-way `w<i>_latency_p<P>_us` of stream workloads instead) and
draws one panel per workload: the percentiles (--percentiles, default 50,90,99) against the
swept parameter --x (default: the first swept parameter that varies), one colour per
combination of the other varying parameters, one line style per percentile. Points are means
over the seeds with 95 % confidence intervals. Also writes latency.csv / .md.

Example:
  ivmc sweep default --param preset=xenloop,mempipe,xway --seeds 3 --jobs 2 --out /tmp/presets
  /usr/bin/python3 analysis/latency.py /tmp/presets --out docs/figures
"""

from __future__ import annotations

import argparse
import re

import pandas as pd

import common


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--x", default=None, metavar="KEY",
                   help="the swept parameter on the x axis (default: the first that varies)")
    p.add_argument("--percentiles", default="50,90,99",
                   help="comma-separated percentiles to draw (default: 50,90,99)")
    p.add_argument("--stream", action="store_true",
                   help="one-way latency of stream workloads (w<i>_latency_p<P>_us) instead of "
                        "request/response round trips")
    p.add_argument("--logy", choices=["auto", "yes", "no"], default="auto",
                   help="log latency axis (auto: when the values span more than 20x)")
    p.add_argument("--name", default="latency", help="output file name stem")


def fmt_pct(p: float) -> str:
    return f"p{p:g}"


def plot(res: common.Results, args: argparse.Namespace) -> None:
    kind = "latency" if args.stream else "rtt"
    wanted = [float(p) for p in args.percentiles.split(",") if p.strip()]
    pattern = re.compile(rf"^w(\d+)_{kind}_p([0-9.]+)_us$")
    found: dict[int, dict[float, str]] = {}
    for c in res.df.columns:
        m = pattern.match(c)
        if m and res.df[c].notna().any():
            found.setdefault(int(m.group(1)), {})[float(m.group(2))] = c
    example = [f"w0_{kind}_p{p:g}_us" for p in wanted]
    if not found:
        raise common.AnalysisError(
            f"{res.directory / 'results.csv'} lacks {kind} percentile columns "
            f"(w<i>_{kind}_p<P>_us, e.g. {', '.join(example)}): "
            + ("no stream workloads" if args.stream else
               "no request/response (tcp_rr/udp_rr) workloads; try --stream"))
    for w, cols in found.items():
        missing = [f"w{w}_{kind}_p{p:g}_us" for p in wanted if p not in cols]
        if missing:
            raise common.AnalysisError(
                f"{res.directory / 'results.csv'} lacks column(s) {', '.join(missing)} "
                f"(the scenario's latency_percentiles do not include them; choose others "
                f"with --percentiles)")

    varying = res.varying()
    if args.x:
        res.require([args.x], "the latency figure's x axis (--x)")
        x = args.x
    elif varying:
        x = varying[0]
    else:
        raise common.AnalysisError(
            f"{res.directory}: no swept parameter varies, nothing to put on the x axis "
            "(sweep one with --param KEY=V1,V2,... or name a column with --x)")
    others = [v for v in varying if v != x]
    df = res.df.copy()
    numeric_x = pd.api.types.is_numeric_dtype(df[x]) and not pd.api.types.is_bool_dtype(df[x])
    xs = common.sorted_values(df[x]) if numeric_x else list(pd.unique(df[x]))
    if not numeric_x:  # categories in the order the sweep gave them
        df["_x"] = df[x].map({v: i for i, v in enumerate(xs)})
    else:
        df["_x"] = df[x].astype(float)

    workloads = sorted(found)
    ncols = min(len(workloads), 2)
    nrows = (len(workloads) + ncols - 1) // ncols
    wide = not numeric_x and len(xs) > 6
    fig, axes = common.new_figure(ncols=ncols, nrows=nrows, width=7.5 if wide else 6.4,
                                  height=5.0 if wide else 4.6)
    flat = axes.ravel()
    for ax in flat[len(workloads):]:
        ax.set_visible(False)
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D"]
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
               "tab:pink", "tab:olive", "tab:cyan", "black"]
    groups = common.groups(df, others)
    rows = []
    for ax, w in zip(flat, workloads):
        all_values = []
        for gi, (key, part) in enumerate(groups):
            for pi, p in enumerate(wanted):
                col = found[w][p]
                st = common.mean_ci(part, ["_x"], col)
                label = fmt_pct(p) + (f", {common.series_label(others, key)}" if others else "")
                colour = palette[(gi if others else pi) % len(palette)]
                if numeric_x:
                    ax.errorbar(st["_x"], st["mean"], yerr=st["ci95"], color=colour,
                                linestyle=styles[pi % 4], marker=markers[pi % 4], capsize=3,
                                linewidth=1.5, markersize=5, label=label)
                else:  # categories: side by side markers, no lines between unrelated values
                    slots = len(groups) * len(wanted)
                    offset = ((gi * len(wanted) + pi) - (slots - 1) / 2) * min(0.8 / slots, 0.15)
                    bars = ax.errorbar(st["_x"] + offset, st["mean"], yerr=st["ci95"],
                                       color=colour, linestyle="none", marker=markers[pi % 4],
                                       capsize=2, elinewidth=1.0, markersize=6, label=label)
                    for b in bars[2]:
                        b.set_alpha(0.45)
                all_values.extend(st["mean"].dropna().tolist())
                for _, r in st.iterrows():
                    xv = xs[int(r["_x"])] if not numeric_x else r["_x"]
                    rows.append({"workload": f"w{w}", **dict(zip(others, key)), x: xv,
                                 "percentile": fmt_pct(p), f"{kind}_us": r["mean"],
                                 "ci95": r["ci95"], "seeds": int(r["n"])})
        ax.set_title(res.workload_label(w), fontsize=11)
        ax.set_xlabel(common.axis_label(x))
        ax.set_ylabel(("round-trip time" if kind == "rtt" else "one-way latency") + " (\u00b5s)")
        if numeric_x:
            positive = [v for v in xs if v > 0]
            if len(positive) == len(xs) and max(xs) / min(xs) >= 10:
                ax.set_xscale("log", base=2 if x.endswith("_bytes") else 10)
                ax.set_xticks(xs)
                ax.set_xticklabels([f"{v:g}" for v in xs])
                ax.minorticks_off()
        else:
            ax.set_xticks(range(len(xs)))
            ax.set_xlim(-0.6, len(xs) - 0.4)
            for i in range(1, len(xs)):
                ax.axvline(i - 0.5, color="0.85", linewidth=0.8)
            ax.set_xticklabels([str(v) for v in xs], rotation=35 if wide else 0,
                               ha="right" if wide else "center")
        common.style_axis(ax)
        if not numeric_x:
            ax.grid(False, axis="x")
        ax.legend(fontsize=8, loc="best", ncol=2 if len(groups) * len(wanted) > 6 else 1)
        positive = [v for v in all_values if v > 0]
        logy = args.logy == "yes" or (args.logy == "auto" and bool(positive)
                                      and max(positive) / min(positive) > 20)
        if logy:
            common.log_axis(ax)
        else:
            ax.set_ylim(bottom=0)
    what = "round-trip time" if kind == "rtt" else "one-way latency"
    col0 = found[workloads[0]][wanted[0]]
    fig.suptitle(f"{'Request/response' if kind == 'rtt' else 'Stream'} {what} percentiles vs "
                 f"{common.axis_label(x)} ({common.ci_note(res, col0)})", fontsize=12)
    fig.tight_layout()
    common.save_figure(fig, args.out, args.name)
    common.write_table(pd.DataFrame(rows), args.out, args.name)


if __name__ == "__main__":
    raise SystemExit(common.main(__doc__, plot, add_arguments))
