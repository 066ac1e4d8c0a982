#!/usr/bin/python3
"""Writes the notebooks of python/notebooks/ with nbformat, without outputs.

The .ipynb files are the source of truth: edit them in Jupyter (then clear the outputs before
committing) or edit the cells below and run

    /usr/bin/python3 python/notebooks/make_notebooks.py

which overwrites getting_started.ipynb and update_period_study.ipynb next to this script.
Cell ids are fixed ("gs-03", "up-07", ...) so that regenerating an unchanged notebook gives
the same file. tests/python/test_notebooks.py executes every notebook here headless.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

# The first code cell of every notebook: find the repository (for scenario files and docs) and
# import ivmc, from PYTHONPATH if set, else from the release build.
SETUP = """
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

try:
    import ivmc
except ImportError:  # no PYTHONPATH: the release build's package, if run inside the repository
    build = next((p / "build" / "release" / "python" for p in [Path.cwd(), *Path.cwd().parents]
                  if (p / "build" / "release" / "python" / "ivmc").is_dir()), None)
    if build is None:
        raise ImportError("ivmc is not importable: set PYTHONPATH to the build's python "
                          "directory (build/release/python)") from None
    sys.path.insert(0, str(build))
    import ivmc

pd.set_option("display.width", 160)
pd.set_option("display.max_colwidth", 90)
print("ivmc from", Path(ivmc.__file__).parent, "| python", sys.executable)
"""


def md(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def code(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def notebook(prefix: str, cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook of ("md" | "code", source) cells for Debian's python3 kernel."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, source) in enumerate(cells, start=1):
        cell = new_markdown_cell(md(source)) if kind == "md" else new_code_cell(code(source))
        cell["id"] = f"{prefix}-{i:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


# --- getting_started.ipynb ---------------------------------------------------------------------

GETTING_STARTED = [
    ("md", """
     # Getting started with ivmc from Python

     ivmc simulates shared-memory communication between co-resident virtual machines (SimGrid):
     VMs on hosts, workloads between them, a shared-memory channel that co-resident pairs may
     use instead of the hypervisor's network path, a membership mechanism that tells each VM who
     is co-resident with it, and live migrations that change the answer while traffic flows.

     This notebook runs the default scenario, reads its results, changes one parameter and
     compares, and runs one of the presets (surveyed systems).

     **Running it.** Build the package first (`cmake --preset release && cmake --build --preset
     release`, see the README), then start Jupyter with Debian's Python and
     `PYTHONPATH=build/release/python`. Without `PYTHONPATH` the first cell falls back to
     `build/release/python` in this repository. Every run happens in a child process (SimGrid
     allows one simulation per process), so cells can be re-run in any order.
     """),
    ("code", SETUP),
    ("md", """
     ## The default scenario

     Scenarios are plain dicts that mirror the TOML format
     ([scenarios/FORMAT.md](../../scenarios/FORMAT.md)). `ivmc.default()` returns the embedded
     default scenario ([scenarios/default.toml](../../scenarios/default.toml)): four VMs on two
     Xen hosts, four netperf-like workloads, two scripted migrations of `web1` and random
     migrations of `cache0`.
     """),
    ("code", """
     scenario = ivmc.default()
     print(scenario["description"], "|", scenario["duration_s"], "simulated seconds")
     pd.DataFrame(scenario["vm"])
     """),
    ("code", """
     pd.DataFrame(scenario["workload"])[["kind", "from", "to", "message_bytes", "rate_per_s", "arrivals"]]
     """),
    ("md", """
     ## One run

     `ivmc.run` runs one point and returns a one-row DataFrame: the seed, every metric, the
     number of simulated events and the wall-clock time. `df.attrs["summary"]` is what the
     command line (`ivmc run`) prints.
     """),
    ("code", """
     df = ivmc.run(scenario)
     print(df.attrs["summary"])
     """),
    ("code", """
     # Every column, one per line (the frame has one row).
     with pd.option_context("display.max_rows", 200):
         display(df.T.rename(columns={0: "value"}))
     """),
    ("md", """
     ## What the key metrics mean

     [docs/metrics.md](../../docs/metrics.md) defines every column and its unit. Rates are over
     the measured interval `[warmup_s, duration_s]`; every metric is deterministic for a given
     scenario and seed (only `wall_s` is not).

     | metric | meaning |
     |---|---|
     | `w<i>_mbps`, `w<i>_messages_per_s` | stream workload *i* (its index in `scenario["workload"]`): application data delivered, Mb/s and messages/s |
     | `w<i>_transactions_per_s` | request/response workload *i*: round trips completed per second |
     | `w<i>_latency_p<P>_us`, `w<i>_rtt_p<P>_us` | one-way latency (streams) and round-trip time (rr), percentile *P*, µs |
     | `w<i>_local_share` | share of the workload's frames that took the shared-memory channel rather than the hypervisor path (a pair uses it only while co-resident and known to be) |
     | `notifications`, `wakeups` | doorbell rings on the channels and receivers woken by them: the CPU cost the notification policy trades against latency |
     | `membership_probes` | the membership mechanism's probes (a periodic scan probes every VM on its host): the cost of keeping views fresh |
     | `race_exposure`, `sends_in_race_window` | share (and number) of sends made while the sender's view of its peer was stale (survey 6.3; expectation in [docs/race-exposure.md](../../docs/race-exposure.md)) |
     | `race_errors`, `fallbacks`, `lost_messages` | operations in race windows that failed, local sends re-sent on the network path, frames lost |
     | `migrations`, `migration_s_mean` | live migrations completed and their mean duration |
     """),
    ("code", """
     key = ["stream_mbps", "rr_transactions_per_s", "w0_local_share", "w1_local_share",
            "w1_rtt_p50_us", "w1_rtt_p99_us", "notifications", "wakeups", "membership_probes",
            "race_exposure", "race_errors", "fallbacks", "migrations", "events", "wall_s"]
     df[key].T.rename(columns={0: "default"})
     """),
    ("md", """
     ## Change a parameter and compare

     The receiver of a channel must be told that data arrived. The default policy, `on_demand`,
     rings only when the receiver asked for it (it was about to sleep); `per_packet` rings for
     every frame (XenLoop); `atw` batches: one ring per `atw_batch` frames or when the oldest
     unannounced frame waited `atw_window_us` (MemPipe). Change a key in the dict, or pass
     overrides with the command line's dotted keys: `ivmc.run(scenario, set={"channel.notify": "atw"})`.
     """),
    ("code", """
     runs = []
     for policy in ["on_demand", "per_packet", "atw"]:
         row = ivmc.run(scenario, set={"channel.notify": policy})
         row.index = [policy]
         runs.append(row)
     compare = pd.concat(runs)
     compare["rings_per_local_frame"] = compare["data_notifications"] / compare["frames_local"]
     compare[["stream_mbps", "rr_transactions_per_s", "rings_per_local_frame", "wakeups",
              "w0_latency_p50_us", "w1_rtt_p50_us", "w3_rtt_p99_us"]].T
     """),
    ("md", """
     Reading the table: the streams deliver what they offer under every policy (their rates are
     fixed), so the difference is in cost and latency. `per_packet` rings once per local frame;
     `on_demand` about half as often; `atw` rings least but makes frames wait for the batch or
     the window, which shows up in latency and, because a request/response pair cannot proceed
     until it is answered, in the rr workloads' transactions per second. Notification is a
     trade-off, not a free win.

     The same seed always gives the same numbers; another seed changes the random arrivals and
     migrations:
     """),
    ("code", """
     again = ivmc.run(scenario)
     other = ivmc.run(scenario, seed=2)
     same = again.drop(columns="wall_s").equals(df.drop(columns="wall_s"))
     print("seed 1 twice, identical:", same)
     print("seed 2: migrations", int(other["migrations"].iloc[0]),
           "race exposure", round(float(other["race_exposure"].iloc[0]), 4))
     """),
    ("md", """
     ## Presets: the surveyed systems

     A preset applies one surveyed system's choices (layer, notification, membership, race
     handling, pool) over the default scenario. [docs/presets.md](../../docs/presets.md) says
     what each one encodes and why.
     """),
    ("code", """
     ivmc.presets()
     """),
    ("code", """
     print(ivmc.preset_text("xenloop"))
     """),
    ("code", """
     xenloop = ivmc.run("preset:xenloop")   # or {"preset": "xenloop", ...} in a dict
     print(xenloop.attrs["summary"])
     side = pd.concat([df.assign(run="default"), xenloop.assign(run="preset:xenloop")]).set_index("run")
     side[["rr_transactions_per_s", "w1_local_share", "w2_local_share", "w1_rtt_p50_us",
           "membership_probes", "race_exposure", "notifications"]].T
     """),
    ("md", """
     XenLoop scans XenStore once a second and does not handle races, so after a migration its
     VMs keep an old view much longer: far fewer membership probes, a much larger share of sends
     in race windows, and pairs that became co-resident during the run (`web1`, `cache0`) stay
     on the hypervisor path for the whole second.

     ## Mistakes are reported like the command line does

     A bad scenario raises `ivmc.ScenarioError` naming the key path (for dicts) or `file:line`
     (for TOML); `ivmc.validate` returns the problems instead of raising.
     """),
    ("code", """
     broken = ivmc.default()
     broken["workload"][1]["to"] = "db9"
     broken["channel"]["notify"] = "sometimes"
     try:
         ivmc.run(broken)
     except ivmc.ScenarioError as error:
         print(error)
     ivmc.validate(broken)
     """),
    ("md", """
     ## Next

     - `ivmc.sweep(scenario, {"membership.period_ms": [10, 100]}, seeds=4, jobs=2)` runs every
       combination in parallel child processes (or on a `dask.distributed` client) and returns
       one DataFrame; `help(ivmc.sweep)`.
     - [update_period_study.ipynb](update_period_study.ipynb) uses it to choose the membership
       update period.
     - [docs/figures.md](../../docs/figures.md) shows the analysis scripts' figures.
     """),
]

# --- update_period_study.ipynb -----------------------------------------------------------------

UPDATE_PERIOD = [
    ("md", """
     # Choosing the membership update period T

     With periodic co-residency detection (XenLoop, MemPipe; survey 3.4.1), a scanner on each
     host checks which VMs are on it every T. After a VM migrates, its view of who is
     co-resident with it is stale until the next scan on its new host: sends in that *race
     window* use a wrong view (survey 6.3). A short T closes windows quickly but costs probes;
     a long T is cheap but leaves views stale longer.

     This notebook sweeps T and the migration rate and measures both sides:

     - **exposure**: sends made inside race windows, per migration and as a share of all sends,
       and race errors (operations in race windows that failed);
     - **cost**: membership probes per second.

     For a Poisson sender of rate λ, [docs/race-exposure.md](../../docs/race-exposure.md)
     derives the expected sends per race window, **λT/2**, and the share of sends,
     **μT/2** for μ migrations per second. We check the simulator against them, look at the
     default scenario, and pick T for an error budget. Metrics are defined in
     [docs/metrics.md](../../docs/metrics.md). The sweeps take about 15 s on two cores (176 runs).
     """),
    ("code", SETUP),
    ("code", """
     import time

     import matplotlib.pyplot as plt

     JOBS = 2  # parallel runs; the sweeps are small enough for a laptop


     def t95(n: int) -> float:
         \"\"\"Two-sided 95 % Student t quantile for a mean of n values (0 for one value).\"\"\"
         if n < 2:
             return 0.0
         try:
             from scipy import stats
             return float(stats.t.ppf(0.975, n - 1))
         except ImportError:
             table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262]
             return table[n - 2] if n - 2 < len(table) else 1.96


     def summarise(frame: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
         \"\"\"Mean of each column per group, with the 95 % confidence half-width as COLUMN_ci.\"\"\"
         groups = frame.groupby(by)[columns]
         mean, std, n = groups.mean(), groups.std(ddof=1).fillna(0.0), groups.count()
         out = {}
         for c in columns:
             out[c] = mean[c]
             out[c + "_ci"] = std[c] / np.sqrt(n[c]) * n[c].map(t95)
         return pd.DataFrame(out)
     """),
    ("md", """
     ## 1. A controlled host: one Poisson sender that migrates at random

     [scenarios/examples/race_exposure.toml](../../scenarios/examples/race_exposure.toml): two
     co-resident VMs, a Poisson UDP stream of λ = 1000 datagrams/s from `a` to `b`, and `a`
     live-migrating at random (Poisson, rate μ) for 30 simulated seconds. This is the set-up of
     the closed form. We sweep T from 10 to 200 ms and μ = 0.5, 1 and 2 migrations/s, with 8
     seeds each (120 runs).
     """),
    ("code", """
     controlled = ivmc.example("race_exposure")  # scenarios/examples/, shipped in the package
     LAMBDA = controlled["workload"][0]["rate_per_s"]
     DURATION = controlled["duration_s"]
     PERIODS = [10, 20, 50, 100, 200]           # T, ms
     RATES = [0.5, 1.0, 2.0]                    # mu, migrations per second (generator[0])

     start = time.time()
     ctl = ivmc.sweep(controlled, {"generator[0].rate_per_s": RATES, "membership.period_ms": PERIODS},
                      seeds=8, jobs=JOBS)
     print(f"{len(ctl)} runs in {time.time() - start:.1f} s; lambda = {LAMBDA}/s, {DURATION} s each")
     ctl[["generator[0].rate_per_s", "membership.period_ms", "seed", "sends", "sends_in_race_window",
          "migrations", "race_errors", "membership_probes"]].head()
     """),
    ("code", """
     def derive(frame: pd.DataFrame, duration_s: float) -> pd.DataFrame:
         \"\"\"Adds the per-migration and per-second columns the plots use.\"\"\"
         frame = frame.copy()
         migrations = frame["migrations"].where(frame["migrations"] > 0)
         frame["T_ms"] = frame["membership.period_ms"]
         frame["stale_sends_per_migration"] = frame["sends_in_race_window"] / migrations
         frame["race_errors_per_migration"] = frame["race_errors"] / migrations
         frame["migrations_per_s"] = frame["migrations"] / duration_s
         # Probes are counted over the whole run (scans start at time 0).
         frame["probes_per_s"] = frame["membership_probes"] / duration_s
         return frame


     ctl = derive(ctl, DURATION)
     METRICS = ["stale_sends_per_migration", "race_exposure", "race_errors_per_migration",
                "probes_per_s", "migrations_per_s", "lost_messages", "fallbacks"]
     ctl_mean = summarise(ctl, ["generator[0].rate_per_s", "T_ms"], METRICS)
     ctl_mean["closed_form_lambda_T_2"] = LAMBDA * ctl_mean.index.get_level_values("T_ms") / 2000
     ctl_mean["measured_over_closed_form"] = (ctl_mean["stale_sends_per_migration"]
                                              / ctl_mean["closed_form_lambda_T_2"])
     ctl_mean[["stale_sends_per_migration", "stale_sends_per_migration_ci", "closed_form_lambda_T_2",
               "measured_over_closed_form", "race_exposure", "race_errors_per_migration",
               "probes_per_s"]].round(4)
     """),
    ("code", """
     t_line = np.linspace(min(PERIODS), max(PERIODS), 200)
     colours = dict(zip(RATES, ["tab:blue", "tab:orange", "tab:green"]))
     fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
     (ax_n, ax_share), (ax_err, ax_cost) = axes
     for mu in RATES:
         m = ctl_mean.xs(mu, level="generator[0].rate_per_s")
         T = m.index.to_numpy()
         kw = dict(color=colours[mu], marker="o", capsize=3, label=f"measured, μ = {mu:g}/s")
         ax_n.errorbar(T, m["stale_sends_per_migration"], m["stale_sends_per_migration_ci"], **kw)
         ax_share.errorbar(T, 100 * m["race_exposure"], 100 * m["race_exposure_ci"], **kw)
         mu_measured = m["migrations_per_s"].mean()  # completed migrations per second
         ax_share.plot(t_line, 100 * mu_measured * t_line / 2000, color=colours[mu], ls="--",
                       label=f"μT/2, μ = {mu_measured:.2f}/s completed")
         ax_err.errorbar(T, m["race_errors_per_migration"], m["race_errors_per_migration_ci"], **kw)
     ax_n.plot(t_line, LAMBDA * t_line / 2000, "k--", label="closed form λT/2")
     probes = ctl_mean.xs(RATES[0], level="generator[0].rate_per_s")["probes_per_s"]
     ax_cost.plot(probes.index, probes, "ko-", label="measured (every μ: identical)")
     vms = len(controlled["vm"])
     # A scan probes every VM on its host; scans run at 0, T, 2T, ... up to the end of the run.
     ax_cost.plot(t_line, vms * (1000 / t_line + 1 / DURATION), "k--", label=f"{vms} VMs / T")

     ax_n.set(title=f"Sends in race windows per migration (λ = {LAMBDA:g}/s)",
              ylabel="sends per migration")
     ax_share.set(title="Share of sends made on a stale view (race exposure)",
                  ylabel="race exposure (% of sends)")
     ax_err.set(title="Race errors per migration", ylabel="failed operations per migration",
                ylim=(0, None))
     ax_cost.set(title="Cost: membership probes (log-log)", ylabel="probes per second",
                 xscale="log", yscale="log")
     for ax in axes.flat:
         ax.set_xlabel("membership update period T (ms)")
         ax.grid(alpha=0.3)
         ax.legend(fontsize=8)
     ax_cost.set_xticks(PERIODS, [str(t) for t in PERIODS])
     ax_cost.set_yticks(probes, [f"{p:.0f}" for p in probes])
     ax_cost.minorticks_off()
     fig.suptitle("Race exposure and cost against T: race_exposure.toml, 30 s, 8 seeds per point "
                  "(95 % CI)")
     plt.show()
     """),
    ("md", """
     **Reading the plots.**

     - Sends in race windows per migration follow λT/2 at every migration rate; they depend on
       T, not on μ. At large μT/2 (μ = 2/s, T = 200 ms: 20 %) a VM often migrates again before
       its previous window closed, the windows overlap, and the measured values fall somewhat
       below the closed form, as docs/race-exposure.md predicts.
     - The share of sends in race windows is μT/2: linear in T *and* in the migration rate.
       This is the quantity a budget should be stated in.
     - Race errors are about one per migration whatever T is: the migration breaks the channel
       before any scan can notice, however often scans run. T cannot buy them down; the race
       policy (`race = "resolution"` here: the failed send falls back to the network path, so
       nothing is lost) is what makes them harmless.
     - Probes per second are (VMs on the host)/T, independent of the migration rate: halving
       T doubles the cost.
     """),
    ("md", """
     ## 2. The default scenario

     The same sweep of T over the default scenario: four VMs and four workloads, two scripted
     migrations of `web1` and random migrations of `cache0`, one simulated second. Only one or
     two migrations finish per run, so we take 8 seeds per T and show every run as a dot. There is
     no single λ here (several senders, closed-loop request/response traffic), so no closed
     form is overlaid.
     """),
    ("code", """
     base = ivmc.default()
     DEFAULT_PERIODS = [5, 10, 20, 50, 100, 200]
     start = time.time()
     dflt = ivmc.sweep(base, {"membership.period_ms": DEFAULT_PERIODS}, seeds=8, jobs=JOBS)
     print(f"{len(dflt)} runs in {time.time() - start:.1f} s")
     dflt = derive(dflt, base["duration_s"])
     DEFAULT_METRICS = ["stale_sends_per_migration", "race_exposure", "race_errors_per_migration",
                        "probes_per_s", "migrations", "fallbacks", "lost_messages"]
     dflt_mean = summarise(dflt, ["T_ms"], DEFAULT_METRICS)
     dflt_mean.round(4)
     """),
    ("code", """
     fig_default, axes = plt.subplots(1, 3, figsize=(14, 4.3), constrained_layout=True)
     ax_n, ax_share, ax_cost = axes
     T = dflt_mean.index.to_numpy()
     for ax, column, scale in [(ax_n, "stale_sends_per_migration", 1.0), (ax_share, "race_exposure", 100.0)]:
         ax.plot(dflt["T_ms"], scale * dflt[column], "o", color="tab:blue", alpha=0.25, ms=4,
                 label="one run")
         mean, half = scale * dflt_mean[column], scale * dflt_mean[column + "_ci"]
         # The runs are skewed: a symmetric interval would reach below zero, so it is cut there.
         ax.errorbar(T, mean, [np.minimum(half, mean), half], color="tab:blue", marker="s",
                     capsize=3, label="mean, 95 % CI (8 seeds)")
     ax_cost.plot(T, dflt_mean["probes_per_s"], "ko-", label="measured")
     vms = len(base["vm"])
     t_dense = np.linspace(T.min(), T.max(), 200)
     ax_cost.plot(t_dense, vms * (1000 / t_dense + 1 / base["duration_s"]), "k--",
                  label=f"{vms} VMs / T (+ the scan at 0 s)")
     ax_n.set(title="Sends in race windows per migration", ylabel="sends per migration")
     ax_share.set(title="Race exposure", ylabel="% of sends made on a stale view")
     ax_cost.set(title="Cost: membership probes", ylabel="probes per second", yscale="log")
     ax_cost.set_yticks(dflt_mean["probes_per_s"], [f"{p:g}" for p in dflt_mean["probes_per_s"]])
     for ax in axes:
         ax.set_xlabel("membership update period T (ms)")
         ax.set_xscale("log")
         ax.set_xticks(T, [f"{t:g}" for t in T])
         ax.minorticks_off()
         ax.grid(alpha=0.3)
         ax.legend(fontsize=8)
     fig_default.suptitle("Default scenario: race exposure and probe cost against the update "
                          "period T (1 s simulated, 8 seeds per T)")
     plt.show()
     """),
    ("code", """
     # Saved only when asked (docs/figures.md: IVMC_FIGURE_DIR=docs/figures), never by the tests.
     out = os.environ.get("IVMC_FIGURE_DIR")
     if out:
         out = Path(out)
         out.mkdir(parents=True, exist_ok=True)
         fig_default.savefig(out / "update_period_default.png", dpi=110)
         table = dflt_mean.reset_index()
         table.to_csv(out / "update_period_default.csv", index=False, float_format="%.6g")
         columns = ["T_ms", "stale_sends_per_migration", "stale_sends_per_migration_ci",
                    "race_exposure", "race_exposure_ci", "race_errors_per_migration", "probes_per_s"]
         lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
         lines += ["| " + " | ".join(f"{row[c]:.4g}" for c in columns) + " |" for _, row in table.iterrows()]
         (out / "update_period_default.md").write_text("\\n".join(lines) + "\\n")
         print("wrote", out / "update_period_default.png", "and its .csv and .md")
     """),
    ("md", """
     **Reading the default scenario.** Exposure grows with T and probes fall as 4/T, as on the
     controlled host, but the curve is lumpy and the intervals are wide: most migrations here
     are `web1`'s two scripted ones, which end at the same times in every seed. Their windows
     close at the first scan after each end; when that scan is the same instant under two
     periods (every 200 ms scan is also a 100 ms scan), the two periods give exactly the same
     exposure, as several seeds do here at 100 and 200 ms. Only `cache0`'s random migrations
     and the Poisson arrivals vary with the seed; in most seeds no migration of `cache0`
     completes within the second, and a seed where one does (moving the sender of the 20,000
     datagrams/s stream) dominates the means at long T. One second holds too few
     migrations for a mean per migration to settle: use the controlled scenario for the law,
     and this one to see what it means for a mixed host.
     """),
    ("md", """
     ## 3. Picking T for an error budget

     Race errors do not depend on T (section 1), so the budget T controls is the **share of
     sends made on a stale view**, `race_exposure` ≈ μT/2. Take a budget of **1 % of sends**
     on hosts where a VM migrates **up to once per second**. Probes cost (VMs on host)/T, so
     the cheapest admissible T is the largest one that meets the budget; the closed form puts
     that bound at T ≤ 2·budget/μ = 20 ms.

     First, what the swept grid says: per migration rate, the largest swept T for which both
     the closed form (at the nominal rate) and the measurement (the mean exposure up to the
     upper end of its 95 % interval) are within the budget.
     """),
    ("code", """
     BUDGET = 0.01        # at most 1 % of sends on a stale view
     MU_DESIGN = 1.0      # the highest migration rate per VM we must tolerate, per second

     rows = []
     for mu in RATES:
         m = ctl_mean.xs(mu, level="generator[0].rate_per_s")
         closed_form = mu * m.index.to_numpy() / 2000           # mu T / 2, T in ms
         upper = (m["race_exposure"] + m["race_exposure_ci"]).to_numpy()
         ok = m.index[(closed_form <= BUDGET + 1e-12) & (upper <= BUDGET)]
         best = int(ok.max()) if len(ok) else None
         rows.append({
             "migrations_per_s": mu,
             "closed_form_T_max_ms": 2 * BUDGET / mu * 1000,
             "largest_swept_T_ms": best,
             "exposure_at_closed_form_bound": m["race_exposure"].get(2 * BUDGET / mu * 1000, np.nan),
             "ci_at_closed_form_bound": m["race_exposure_ci"].get(2 * BUDGET / mu * 1000, np.nan),
         })
     pick = pd.DataFrame(rows).set_index("migrations_per_s")
     pick.round(4)
     """),
    ("md", """
     At the design rate, 20 ms sits exactly on the bound: the measured mean is just under the
     budget (it follows μT/2 with the rate of *completed* migrations, slightly below the
     generator's because a VM is not sent off again while it is still moving), but with no
     margin, so its confidence interval crosses the budget and the grid falls back to 10 ms,
     which doubles the cost. Neither is a good answer. A reasoned pick takes the closed form's
     bound with a margin for run-to-run variation, **T = ¾ × 20 ms = 15 ms**, and checks it
     with a run of its own:
     """),
    ("code", """
     MARGIN = 0.75                                          # aim at 3/4 of the budget
     T_PICK = int(MARGIN * 2 * BUDGET / MU_DESIGN * 1000)   # ms

     check = ivmc.sweep(controlled, {"generator[0].rate_per_s": [MU_DESIGN],
                                     "membership.period_ms": [T_PICK]}, seeds=8, jobs=JOBS)
     c = summarise(derive(check, DURATION), ["T_ms"], METRICS).iloc[0]
     print(f"T = {T_PICK} ms at mu = {MU_DESIGN:g}/s: exposure {c['race_exposure']:.2%} "
           f"+- {c['race_exposure_ci']:.2%} (budget {BUDGET:.0%}), "
           f"{c['stale_sends_per_migration']:.1f} stale sends per migration (lambda T/2 = "
           f"{LAMBDA * T_PICK / 2000:g}), {c['race_errors_per_migration']:.2f} race errors per "
           f"migration, {c['probes_per_s']:.0f} probes/s on a host with {len(controlled['vm'])} VMs")
     # The conclusion below relies on this; if the model changes, revisit it.
     assert c["race_exposure"] + c["race_exposure_ci"] <= BUDGET, "T_PICK no longer meets the budget"
     """),
    ("md", """
     **The pick: T = 15 ms** for a 1 % budget at up to one migration per second per VM. The run
     confirms it: the exposure is about three quarters of the budget and its 95 % interval
     stays inside it. It costs about 67 probes per second per VM on the host (133/s here),
     between six and seven times the default 100 ms: that is the price of the budget, and with
     `periodic` detection nothing cheaper meets it.

     How the pick moves:

     - The admissible T is proportional to the budget and inversely proportional to the
       migration rate: the bound is 40 ms at 0.5 migrations/s and 10 ms at 2/s (the table
       above). Size T for the *highest* migration rate expected, since exposure scales with
       it, and keep a margin below the bound.
     - If the budget is stated per migration instead (at most B stale sends per migration,
       say to bound what fallbacks must re-send), T ≤ 2B/λ: independent of μ, set by the
       busiest sender's rate λ.
     - Race errors (about one per migration) are not a function of T. To reduce them, change
       the race policy or the detection mechanism (an event-driven watch closes a window after
       a fixed delay instead of T/2 on average), not the period.
     """),
]


def main() -> int:
    for name, prefix, cells in [
        ("getting_started.ipynb", "gs", GETTING_STARTED),
        ("update_period_study.ipynb", "up", UPDATE_PERIOD),
    ]:
        path = HERE / name
        nbformat.write(notebook(prefix, cells), path)
        print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
