"""The analysis scripts (analysis/*.py) on small synthetic results directories: each draws a
non-empty PNG and a table, and each names the column it needs when results.csv lacks it.

Run: /usr/bin/python3 -m pytest -q tests/python/test_analysis.py
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANALYSIS = ROOT / "analysis"
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def write_results(directory: Path, params: dict[str, list], metrics, seeds: int = 2,
                  scenario_toml: str | None = None, drop: tuple[str, ...] = ()) -> Path:
    """results.csv (and meta.json) as `ivmc sweep` writes them: the cross product of `params`
    (first varying slowest) x seeds, with metrics(point_values: dict, seed) -> dict."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = list(params)
    rows = []
    for point, values in enumerate(itertools.product(*params.values())):
        p = dict(zip(keys, values))
        for seed in range(1, seeds + 1):
            row = {"point": point, "seed": seed, **p, **metrics(p, seed)}
            row["events"] = 1000
            row["wall_s"] = 0.01
            rows.append({k: v for k, v in row.items() if k not in drop})
    columns = list(rows[0])
    with open(directory / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (str(v).lower() if isinstance(v, bool) else v) for k, v in r.items()})
    meta = {"state": "complete",
            "params": [{"key": k, "values": [str(v) for v in vs]} for k, vs in params.items()
                       if k not in drop],
            "seeds": seeds, "first_seed": 1}
    if scenario_toml is not None:
        meta["scenario_toml"] = scenario_toml
    (directory / "meta.json").write_text(json.dumps(meta))
    return directory


def run(script: str, results: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, str(ANALYSIS / f"{script}.py"), str(results), "--out",
                           str(out), *extra], capture_output=True, text=True, timeout=120)


# --- fixtures, one per script ----------------------------------------------------------------

RACE_TOML = """
name = "race"
duration_s = 30.0
[membership]
detection = "periodic"
[[workload]]
kind = "udp_stream"
from = "a"
to = "b"
message_bytes = 64
rate_per_s = 1000
"""


def race(d: Path, drop=()):
    def m(p, seed):
        T = p["membership.period_ms"] / 1e3
        migrations = 14 + seed % 2
        window = 1000 * (T / 2 if p["membership.detection"] == "periodic" else 0.5) * migrations
        return {"sends": 30000, "sends_in_race_window": round(window + seed),
                "race_exposure": window / 30000, "race_errors": migrations - seed,
                "migrations": migrations, "membership_probes": round(60 / T)}
    return write_results(d, {"membership.period_ms": [10, 50, 200],
                             "membership.detection": ["periodic", "adaptive"]}, m, seeds=3,
                         scenario_toml=RACE_TOML, drop=drop)


PAIR_TOML = """
name = "pair"
[preset]
name = "xenloop"
system = "XenLoop"
[platform]
hypervisor = "xen"
[[workload]]
kind = "tcp_stream"
from = "a"
to = "b"
message_bytes = 1024
"""


def throughput(d: Path, drop=()):
    def m(p, seed):
        size = p["workload.message_bytes"]
        gain = (2.0 if p["channel.notify"] == "atw" else 1.2) if p["channel.enabled"] else 1.0
        mbps = size * gain / (1 + size / 4096) * (0.9 if p["workload.kind"] == "udp_stream" else 1)
        return {"w0_mbps": mbps, "w0_messages_per_s": mbps * 1e6 / 8 / size,
                "stream_mbps": mbps, "data_notifications": 10, "sends": 100}
    return write_results(d, {"workload.kind": ["tcp_stream", "udp_stream"],
                             "workload.message_bytes": [64, 1024, 16384],
                             "channel.notify": ["per_packet", "atw"],
                             "channel.enabled": [True, False]}, m, seeds=1,
                         scenario_toml=PAIR_TOML, drop=drop)


def latency(d: Path, drop=()):
    def m(p, seed):
        base = {"xenloop": 40.0, "mempipe": 30.0, "ivc": 5.0}[p["preset"]]
        out = {}
        for w in (0, 1):
            for pct, f in (("50", 1), ("90", 1.5), ("99", 3), ("99.9", 4)):
                out[f"w{w}_rtt_p{pct}_us"] = base * f * (w + 1) + seed
            out[f"w{w}_transactions_per_s"] = 1e6 / base
        return out
    toml = """
[[workload]]
kind = "tcp_rr"
from = "a"
to = "b"
message_bytes = 64
[[workload]]
kind = "udp_rr"
from = "c"
to = "d"
message_bytes = 256
"""
    return write_results(d, {"preset": ["xenloop", "mempipe", "ivc"]}, m, seeds=2,
                         scenario_toml=toml, drop=drop)


def notifications(d: Path, drop=()):
    def m(p, seed):
        n, t = p["channel.atw_batch"], p["channel.atw_window_us"]
        sends = 10000
        per = max(1 / n, 10 / t)
        return {"data_notifications": round(sends * per) + seed, "sends": sends,
                "w0_latency_p50_us": 20 + t * (1 - 1 / n), "w0_mbps": 1000}
    return write_results(d, {"channel.atw_batch": [1, 4, 16, 64],
                             "channel.atw_window_us": [10, 100, 1000]}, m, seeds=2,
                         scenario_toml='[channel]\nnotify = "atw"\n', drop=drop)


def pool(d: Path, drop=()):
    def m(p, seed):
        static = p["pool.allocation"] == "static_equal"
        k = p["pool.max_pairs"]
        return {"pool_utilisation": min(1, 4 / k) / 2 if static else 0.01,
                "pool_refusals": (1000 * max(0, 4 - k) + seed) if static else 0,
                "stream_mbps": 4200 + seed, "w0_latency_p50_us": 15000 / k if static else 150}
    return write_results(d, {"pool.max_pairs": [2, 4, 8, 16],
                             "pool.allocation": ["static_equal", "proportional"]}, m, seeds=2,
                         scenario_toml="[platform]\nhosts = 2\n[pool]\nenabled = true\n"
                                       "pool_mib = 16\n", drop=drop)


CASES = {
    # script: (fixture, a column the figure cannot do without, extra options)
    "race_exposure": (race, "sends_in_race_window", ()),
    "throughput": (throughput, "workload.message_bytes", ()),
    "latency": (latency, "w0_rtt_p90_us", ()),
    "notifications": (notifications, "data_notifications", ()),
    "pool": (pool, "pool.allocation", ("--extra", "stream_mbps,w0_latency_p50_us")),
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_script_draws_a_png_and_a_table(script, tmp_path):
    fixture, _, extra = CASES[script]
    results = fixture(tmp_path / "results")
    out = tmp_path / "out"
    proc = run(script, results, out, *extra)
    assert proc.returncode == 0, proc.stderr
    png = out / f"{script}.png"
    assert png.is_file() and png.stat().st_size > 10_000, proc.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = out / f"{script}.csv"
    assert table.is_file() and len(table.read_text().splitlines()) > 1
    assert (out / f"{script}.md").read_text().startswith("| ")


@pytest.mark.parametrize("script", sorted(CASES))
def test_missing_column_is_named(script, tmp_path):
    fixture, needed, extra = CASES[script]
    results = fixture(tmp_path / "results", drop=(needed,))
    proc = run(script, results, tmp_path / "out", *extra)
    assert proc.returncode != 0
    assert needed in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "out" / f"{script}.png").exists()


@pytest.mark.parametrize("script", sorted(CASES))
def test_directory_without_results_csv(script, tmp_path):
    proc = run(script, tmp_path, tmp_path / "out")
    assert proc.returncode != 0
    assert "results.csv" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("script", sorted(CASES))
def test_help(script):
    proc = subprocess.run([PYTHON, str(ANALYSIS / f"{script}.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "RESULTS_DIR" in proc.stdout and "--out" in proc.stdout


def test_race_exposure_without_duration_needs_an_option(tmp_path):
    results = race(tmp_path / "results")
    (results / "meta.json").unlink()  # no scenario to read duration_s from
    proc = run("race_exposure", results, tmp_path / "out")
    assert proc.returncode != 0 and "duration_s" in proc.stderr, proc.stderr
    proc = run("race_exposure", results, tmp_path / "out", "--duration", "30")
    assert proc.returncode == 0, proc.stderr


def test_race_exposure_table_holds_the_closed_form(tmp_path):
    import pandas as pd

    results = race(tmp_path / "results")
    assert run("race_exposure", results, tmp_path / "out", "--rate", "1000").returncode == 0
    table = pd.read_csv(tmp_path / "out" / "race_exposure.csv")
    periodic = table[table["membership.detection"] == "periodic"].sort_values("T_ms")
    assert list(periodic["closed_form_lambda_T_over_2"]) == pytest.approx([5, 25, 100])
    # The fixture's windows are lambda*T/2 per migration plus a little.
    assert list(periodic["window_sends_per_migration"]) == pytest.approx([5, 25, 100], rel=0.05)


def test_ivmc_plot_runs_a_script(tmp_path):
    ivmc = Path(os.environ.get("IVMC_BIN", ROOT / "build" / "release" / "cli" / "ivmc"))
    if not ivmc.is_file():
        pytest.skip(f"no ivmc binary at {ivmc} (set IVMC_BIN)")
    results = pool(tmp_path / "results")
    env = {**os.environ, "IVMC_ANALYSIS_DIR": str(ANALYSIS)}
    proc = subprocess.run([str(ivmc), "plot", "pool", str(results), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120, env=env)
    if "plot" in proc.stderr and "was not expected" in proc.stderr:
        pytest.skip("this ivmc binary has no plot subcommand yet")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "pool.png").stat().st_size > 0
    proc = subprocess.run([str(ivmc), "plot", "no_such_script", str(results)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode != 0 and "no_such_script" in proc.stderr


MIGRATING_TOML = """
name = "two-streams"
duration_s = 30.0
[[vm]]
name = "a"
[[vm]]
name = "b"
[[vm]]
name = "c"
[[vm]]
name = "d"
[[workload]]
from = "a"
to = "b"
[[workload]]
from = "c"
to = "d"
[[generator]]
kind = "migrate"
vms = ["a"]
"""


def test_race_exposure_lambda_is_the_migrating_vms_rate(tmp_path):
    """lambda counts only the workloads of the VMs that migrate (100/s of a's 1000/s of all
    sends), and without a scenario to name them the script warns before using all sends."""
    import pandas as pd

    def m(p, seed):
        return {"w0_messages_per_s": 100.0, "w1_messages_per_s": 900.0, "sends": 30000,
                "sends_in_race_window": 10, "race_exposure": 1 / 3000, "race_errors": 1,
                "migrations": 2}
    results = write_results(tmp_path / "results", {"membership.period_ms": [20, 200]}, m,
                            seeds=2, scenario_toml=MIGRATING_TOML)
    proc = run("race_exposure", results, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
    table = pd.read_csv(tmp_path / "out" / "race_exposure.csv").sort_values("T_ms")
    assert list(table["closed_form_lambda_T_over_2"]) == pytest.approx([1, 10])  # 100/s * T/2

    (results / "meta.json").unlink()
    proc = run("race_exposure", results, tmp_path / "out2", "--duration", "30")
    assert proc.returncode == 0, proc.stderr
    assert "warning: no scenario in meta.json names the migrating VMs" in proc.stderr
    table = pd.read_csv(tmp_path / "out2" / "race_exposure.csv").sort_values("T_ms")
    assert list(table["closed_form_lambda_T_over_2"]) == pytest.approx([10, 100])  # 1000/s
