#!/usr/bin/python3
"""Throughput versus message size for stream workloads (the survey's Figures 3 and 4 shape).

Reads a sweep over `workload.message_bytes` and draws throughput (w0_mbps, else stream_mbps;
--metric chooses) on a log2 message-size axis, one line per combination of the other swept
parameters (preset, channel.notify, channel.enabled, ...), one panel per stream kind when
`workload.kind` varies (tcp_stream, udp_stream; request/response rows are left out). Runs with
the channel off take the hypervisor path, where the notification policy should not matter:
their lines are merged into one when they agree within 1 %. Also writes throughput.csv / .md.

Example:
  ivmc sweep scenarios/examples/xenloop_pair.toml --param workload.kind=tcp_stream,udp_stream \\
      --param workload.message_bytes=64,256,1024,4096,16384 \\
      --param channel.notify=per_packet,atw --param channel.enabled=true,false --jobs 2 \\
      --out /tmp/xenloop
  /usr/bin/python3 analysis/throughput.py /tmp/xenloop --out docs/figures
"""

from __future__ import annotations

import argparse

import pandas as pd

import common

X = "workload.message_bytes"
KIND = "workload.kind"
ENABLED = "channel.enabled"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metric", default=None,
                   help="throughput column, Mb/s (default: w0_mbps if present, else stream_mbps)")
    p.add_argument("--logy", action="store_true", help="log throughput axis")
    p.add_argument("--name", default="throughput", help="output file name stem")


def merge_channel_off(df: pd.DataFrame, series: list[str], metric: str) -> tuple[pd.DataFrame,
                                                                                   list[str]]:
    """Give channel-off rows one series when the channel.* settings make no difference."""
    if ENABLED not in series:
        return df, series
    moot = [s for s in series if s.startswith("channel.") and s != ENABLED]
    if not moot:
        return df, series
    off = df[~df[ENABLED].astype(bool)]
    keep = [c for c in series if c not in moot] + [X, "seed"] + ([KIND] if KIND in df else [])
    spread = off.groupby(keep)[metric].agg(lambda s: (s.max() - s.min()) / max(abs(s.mean()),
                                                                             1e-12))
    if len(spread) and spread.max() > 0.01:
        return df, series  # they differ: keep every line
    df = df.copy()
    for s in moot:
        df[s] = df[s].astype(object)
        df.loc[~df[ENABLED].astype(bool), s] = "\u2014"
    df = df.drop_duplicates(subset=[c for c in df.columns if c in series + keep])
    if len(spread):
        print(f"note: channel-off runs merged across {', '.join(moot)} "
              f"(they differ by at most {spread.max() * 100:.2f} %)")
    return df, series


def label_for(series: list[str], key: tuple) -> str:
    values = dict(zip(series, key))
    if ENABLED in values and not bool(values[ENABLED]):
        rest = [common.value_label(k, v) for k, v in values.items()
                if k != ENABLED and v != "\u2014"]
        return "channel off (hypervisor path)" + (f", {', '.join(rest)}" if rest else "")
    rest = common.series_label([k for k in series if k != ENABLED],
                               [values[k] for k in series if k != ENABLED])
    if ENABLED in values:
        return "shared memory" + (f", {rest}" if series != [ENABLED] else "")
    return rest


def plot(res: common.Results, args: argparse.Namespace) -> None:
    res.require([X], "the throughput figure (its x axis)")
    metric = args.metric or res.require_any(["w0_mbps", "stream_mbps"], "the throughput figure")
    res.require([metric], "the throughput figure")
    df = res.df
    if KIND in df.columns:
        df = df[df[KIND].astype(str).str.endswith("_stream")]
        if df.empty:
            raise common.AnalysisError(
                f"{res.directory}: no stream rows (workload.kind has no tcp_stream/udp_stream)")
    df = df[df[metric].notna()]
    if df.empty:
        raise common.AnalysisError(f"{res.directory}: column {metric} has no values "
                                   "(is workload 0 a stream?)")
    kinds = common.sorted_values(df[KIND]) if KIND in df.columns else \
        [res.setting("workload[0].kind", "stream")]
    series = res.varying(exclude=[X, KIND])
    df, series = merge_channel_off(df, series, metric)

    # One colour per series across panels; the channel-off baseline in black, dashed.
    keys = [k for k, _ in common.groups(df, series)]
    palette = iter(["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple",
                    "tab:brown", "tab:pink", "tab:olive", "tab:cyan"] * 4)
    dashes = iter(["--", ":", "-."] * 4)
    colour, style = {}, {}
    for k in keys:
        off = ENABLED in series and not bool(dict(zip(series, k))[ENABLED])
        colour[k] = "black" if off and len(keys) < 10 else next(palette)
        style[k] = next(dashes) if off else "-"

    fig, axes = common.new_figure(ncols=len(kinds), width=6.4, height=4.8, sharey=False)
    sizes = common.sorted_values(df[X].astype(float))
    rows = []
    for ax, kind in zip(axes[0], kinds):
        part_kind = df[df[KIND] == kind] if KIND in df.columns else df
        for k, part in common.groups(part_kind, series):
            st = common.mean_ci(part, [X], metric)
            ax.errorbar(st[X].astype(float), st["mean"], yerr=st["ci95"], marker="o",
                        linestyle=style[k], color=colour[k], capsize=3, linewidth=1.7,
                        markersize=5, label=label_for(series, k))
            for _, r in st.iterrows():
                rows.append({**({KIND: kind}), **dict(zip(series, k)), X: int(r[X]),
                             f"{metric}": r["mean"], "ci95": r["ci95"], "seeds": int(r["n"])})
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes)
        ax.set_xticklabels([f"{int(s)}" for s in sizes])
        ax.minorticks_off()
        if args.logy:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_xlabel("message size (bytes, log\u2082 scale)")
        ax.set_ylabel("throughput (Mb/s)")
        ax.set_title(str(kind).upper().replace("_", " "), fontsize=11)
        common.style_axis(ax)
        ax.legend(fontsize=8, loc="upper left")
    preset = common.preset_name(res)
    where = f"preset {preset}, " if preset and "preset" not in series else ""
    hv = res.setting("platform.hypervisor")
    fig.suptitle(f"Stream throughput vs message size ({where}{hv or ''} host, "
                 f"{metric}; {common.ci_note(res, metric)})", fontsize=12)
    fig.tight_layout()
    common.save_figure(fig, args.out, args.name)
    table = pd.DataFrame(rows)
    common.write_table(table, args.out, args.name)


if __name__ == "__main__":
    raise SystemExit(common.main(__doc__, plot, add_arguments))
