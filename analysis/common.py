"""Shared loading, statistics and plotting helpers for the analysis scripts.

A results directory is what `ivmc sweep` (or `ivmc run --out`) writes: `results.csv` (one row
per point and seed; columns in docs/results.md) and, usually, `meta.json` (the sweep's
parameters and base scenario). Every script calls `main()` here with its own `plot` function,
so they share the command line (`RESULTS_DIR --out DIR`), the error handling (a clear message
naming what is missing, exit status 2) and the figure style.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


class AnalysisError(Exception):
    """A problem with the input the user can fix (printed without a traceback)."""


# A scenario key as a sweep column: a table's key (`channel.notify`, `workload[1].rate_per_s`,
# `costs.syscall_ns`) or one of the top-level keys. Metric names never match (docs/results.md).
_KEY_RE = re.compile(r"^(platform|channel|membership|pool|costs|vm|workload|event|generator)"
                     r"(\[\d+\])?\.")
_TOP_LEVEL_KEYS = {"preset", "name", "description", "duration_s", "warmup_s",
                   "latency_percentiles"}
_FIXED_COLUMNS = ("point", "seed", "events", "wall_s")


def is_param_column(name: str) -> bool:
    return bool(_KEY_RE.match(name)) or name in _TOP_LEVEL_KEYS


@dataclass
class Results:
    """One results directory: the rows, the swept parameter columns and the base scenario."""

    directory: Path
    df: pd.DataFrame
    params: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    scenario: dict[str, Any] = field(default_factory=dict)

    def require(self, columns: Iterable[str], purpose: str) -> None:
        """Raise AnalysisError naming every column of `columns` that results.csv lacks."""
        missing = [c for c in columns if c not in self.df.columns]
        if missing:
            raise AnalysisError(
                f"{self.directory / 'results.csv'} lacks column(s) {', '.join(missing)} "
                f"needed for {purpose}"
                + (" (sweep it with --param KEY=V1,V2,...)" if any(is_param_column(c)
                                                                   for c in missing) else ""))

    def require_any(self, columns: Sequence[str], purpose: str) -> str:
        """The first of `columns` present; AnalysisError naming them all if none is."""
        for c in columns:
            if c in self.df.columns:
                return c
        raise AnalysisError(
            f"{self.directory / 'results.csv'} lacks every one of the columns "
            f"{', '.join(columns)}; one is needed for {purpose}")

    def varying(self, exclude: Iterable[str] = ()) -> list[str]:
        """Swept parameters that take more than one value, in sweep order, minus `exclude`."""
        ex = set(exclude)
        return [c for c in self.params if c not in ex and self.df[c].nunique(dropna=False) > 1]

    def setting(self, key: str, default: Any = None) -> Any:
        """A scenario value: the column's if it is swept but constant, else the base scenario's
        (from meta.json) by dotted key (`membership.period_ms`, `workload[0].kind`)."""
        if key in self.df.columns and self.df[key].nunique() == 1:
            return self.df[key].iloc[0]
        node: Any = self.scenario
        for part in key.split("."):
            m = re.fullmatch(r"(\w+)\[(\d+)\]", part)
            name, index = (m.group(1), int(m.group(2))) if m else (part, None)
            if not isinstance(node, dict) or name not in node:
                return default
            node = node[name]
            if index is not None:
                if not isinstance(node, list) or index >= len(node):
                    return default
                node = node[index]
        return node

    def seeds(self) -> int:
        return int(self.df["seed"].nunique()) if "seed" in self.df.columns else 1

    def workload(self, index: int) -> dict[str, Any]:
        wl = self.scenario.get("workload", [])
        return wl[index] if index < len(wl) else {}

    def workload_label(self, index: int) -> str:
        w = self.workload(index)
        if not w:
            return f"workload {index}"
        size = self.setting(f"workload[{index}].message_bytes",
                            self.setting("workload.message_bytes", w.get("message_bytes")))
        text = f"w{index}: {w.get('kind', '?')} {w.get('from', '?')}\u2192{w.get('to', '?')}"
        if size is not None and "workload.message_bytes" not in self.varying() \
                and f"workload[{index}].message_bytes" not in self.varying():
            text += f", {int(float(size))} B"
        return text


def _convert(series: pd.Series) -> pd.Series:
    """Numbers as numbers, true/false as bools, anything else left as text."""
    lowered = series.str.lower()
    if lowered.isin(["true", "false"]).all():
        return lowered == "true"
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all():
        return numeric
    return series


def load(results_dir: str | Path) -> Results:
    """Read RESULTS_DIR/results.csv (and meta.json if present)."""
    d = Path(results_dir)
    if not d.is_dir():
        raise AnalysisError(f"{d}: not a directory (expected the --out directory of "
                            "`ivmc sweep` or `ivmc run`)")
    csv = d / "results.csv"
    if not csv.is_file():
        raise AnalysisError(f"{d}: no results.csv in it (expected the --out directory of "
                            "`ivmc sweep` or `ivmc run`)")
    try:
        raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise AnalysisError(f"{csv}: empty file") from None
    except pd.errors.ParserError as e:
        raise AnalysisError(f"{csv}: not a results table ({e})") from None
    if raw.empty:
        raise AnalysisError(f"{csv}: no rows (did the sweep complete any run?)")
    meta: dict[str, Any] = {}
    meta_path = d / "meta.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"warning: {meta_path}: unreadable ({e}); going on without it",
                  file=sys.stderr)
    params = [p["key"] for p in meta.get("params", []) if p.get("key") in raw.columns]
    if not params:
        params = [c for c in raw.columns if is_param_column(c)]
    df = pd.DataFrame(index=raw.index)
    for c in raw.columns:
        if c in params:
            df[c] = _convert(raw[c])
        else:
            df[c] = pd.to_numeric(raw[c], errors="coerce")
    scenario: dict[str, Any] = {}
    if meta.get("scenario_toml"):
        try:
            scenario = tomllib.loads(meta["scenario_toml"])
        except tomllib.TOMLDecodeError as e:
            print(f"warning: {meta_path}: scenario_toml unreadable ({e})", file=sys.stderr)
    sort = [c for c in ("point", "seed") if c in df.columns]
    if sort:
        df = df.sort_values(sort, kind="stable").reset_index(drop=True)
    return Results(directory=d, df=df, params=params, meta=meta, scenario=scenario)


# ---------------------------------------------------------------------------------------------
# Statistics

_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000}


def t975(dof: int) -> float:
    """Two-sided 95 % Student t quantile for `dof` degrees of freedom."""
    if dof < 1:
        return float("nan")
    try:
        from scipy import stats  # type: ignore

        return float(stats.t.ppf(0.975, dof))
    except ImportError:
        known = sorted(_T975)
        for k in known:
            if dof <= k:
                return _T975[k]
        return 1.96


def mean_ci(df: pd.DataFrame, by: Sequence[str], value: str) -> pd.DataFrame:
    """Mean of `value` over the rows of each `by` group (the seeds), with the half-width of its
    95 % confidence interval (Student t; 0 when a group has one row) and the count n."""
    def agg(s: pd.Series) -> pd.Series:
        s = s.dropna()
        n = len(s)
        m = s.mean() if n else float("nan")
        half = t975(n - 1) * s.std(ddof=1) / math.sqrt(n) if n > 1 else 0.0
        return pd.Series({"mean": m, "ci95": half, "n": n})

    if not by:
        return agg(df[value]).to_frame().T
    out = df.groupby(list(by), sort=True, dropna=False)[value].apply(agg).unstack()
    out["n"] = out["n"].astype(int)
    return out.reset_index()


# ---------------------------------------------------------------------------------------------
# Labels

_PRETTY_KEYS = {
    "preset": "preset",
    "channel.notify": "notify",
    "channel.enabled": "channel",
    "channel.atw_batch": "N",
    "channel.atw_window_us": "t",
    "membership.detection": "detection",
    "membership.period_ms": "T",
    "pool.allocation": "allocation",
    "workload.kind": "workload",
    "workload.message_bytes": "message",
}
_UNITS = {"_us": "\u00b5s", "_ms": "ms", "_s": "s", "_bytes": "B", "_kib": "KiB",
          "_mib": "MiB", "_gbps": "Gb/s", "_ns": "ns"}


def unit_of(key: str) -> str:
    for suffix, unit in _UNITS.items():
        if key.endswith(suffix):
            return unit
    return ""


def axis_label(key: str) -> str:
    """An axis label for a scenario key, with its unit (`membership.period_ms` -> `... (ms)`)."""
    names = {
        "membership.period_ms": "scan period T",
        "workload.message_bytes": "message size",
        "channel.atw_batch": "ATW batch N (messages)",
        "channel.atw_window_us": "ATW window t",
        "pool.pool_mib": "pool size per host",
        "pool.max_pairs": "pool.max_pairs (pairs)",
        "pool.rebalance_ms": "rebalance period",
        "channel.notify": "notification policy (channel.notify)",
        "workload.rate_per_s": "offered rate (messages/s)",
    }
    unit = unit_of(key)
    text = names.get(key, key)
    return f"{text} ({unit})" if unit and f"({unit})" not in text else text


def value_label(key: str, value: Any) -> str:
    if key == "channel.enabled":
        return "shared memory" if bool(value) else "channel off (hypervisor path)"
    if key.endswith("rate_per_s") and key.startswith("workload"):
        return "unthrottled sender" if float(value) == 0 else f"offered {value:g} msg/s"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    unit = unit_of(key)
    name = _PRETTY_KEYS.get(key, key)
    return f"{name}={value}{(' ' + unit) if unit else ''}"


def series_label(keys: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(value_label(k, v) for k, v in zip(keys, values)) or "all runs"


def as_tuple(v: Any) -> tuple:
    return v if isinstance(v, tuple) else (v,)


def groups(df: pd.DataFrame, cols: Sequence[str]) -> list[tuple[tuple, pd.DataFrame]]:
    """(values, rows) for each combination of `cols` (one group of every row if none)."""
    if not cols:
        return [((), df)]
    key = list(cols) if len(cols) > 1 else cols[0]
    return [(as_tuple(k), part) for k, part in df.groupby(key, sort=True)]


def ci_note(res: Results, metric: str | None = None) -> str:
    """How the points were made: 'mean ± 95% CI over N seeds', noting when the seeds agree."""
    n = res.seeds()
    if n <= 1:
        return "one seed per point (no confidence interval)"
    if metric is not None and metric in res.df.columns and res.params:
        spread = res.df.groupby(res.params, dropna=False)[metric].std(ddof=0).fillna(0)
        if (spread <= 1e-12 * res.df[metric].abs().max()).all():
            return f"{n} seeds per point, identical results"
    return f"mean \u00b1 95% CI over {n} seeds"


def preset_name(res: Results) -> str | None:
    """The preset the runs used, if one and the same for all of them."""
    if "preset" in res.df.columns:
        vals = res.df["preset"].unique()
        return str(vals[0]) if len(vals) == 1 else None
    p = res.scenario.get("preset")
    if isinstance(p, dict):
        return p.get("name")
    return p if isinstance(p, str) else None


# ---------------------------------------------------------------------------------------------
# Output

def new_figure(ncols: int = 1, nrows: int = 1, width: float = 6.4, height: float = 4.6,
               **kw: Any):
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             squeeze=False, **kw)
    return fig, axes


def style_axis(ax, grid_log: bool = False) -> None:
    ax.grid(True, which="major", alpha=0.35)
    if grid_log:
        ax.grid(True, which="minor", alpha=0.12)


def log_axis(ax, which: str = "y", base: float = 10) -> None:
    """A log axis labelled at 1, 2, 5 x 10^k in plain numbers (not 10^k notation)."""
    from matplotlib import ticker

    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log", base=base)
    axis.set_major_locator(ticker.LogLocator(base=base, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def save_figure(fig, out: Path, name: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")
    return path


def _fmt_cell(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return ""
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(v)


def write_table(df: pd.DataFrame, out: Path, name: str) -> None:
    """`name.csv` (full precision) and `name.md` (a markdown table, 4 significant digits)."""
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / f"{name}.csv", index=False)
    lines = ["| " + " | ".join(str(c) for c in df.columns) + " |",
             "|" + "---|" * len(df.columns)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt_cell(v) for v in row) + " |")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / (name + '.csv')} and {name}.md")


def sorted_values(series: pd.Series) -> list:
    vals = list(pd.unique(series))
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def main(description: str, plot: Callable[[Results, argparse.Namespace], None],
         add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
         argv: Sequence[str] | None = None) -> int:
    """The shared command line: RESULTS_DIR [--out DIR] plus the script's own options."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dir", metavar="RESULTS_DIR",
                        help="a directory written by `ivmc sweep` or `ivmc run --out` "
                             "(results.csv, optionally meta.json)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="where to write the figure and table (default: RESULTS_DIR/figures)")
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    args.out = Path(args.out) if args.out else Path(args.results_dir) / "figures"
    try:
        plot(load(args.results_dir), args)
    except AnalysisError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    return 0
