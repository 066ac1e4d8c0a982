"""The ivmc command line as a new user meets it (issue 19), run as the real binary: an --out
directory never mixes scenarios, numbers out of range are refused by validate, input errors
exit 2.

Run: IVMC_BIN=build/release/cli/ivmc /usr/bin/python3 -m pytest -q tests/python/test_cli.py
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IVMC = Path(os.environ.get("IVMC_BIN", ROOT / "build" / "release" / "cli" / "ivmc")).resolve()
RACE = str(ROOT / "scenarios" / "examples" / "race_exposure.toml")

if not IVMC.is_file():
    pytest.skip(f"no ivmc binary at {IVMC} (set IVMC_BIN)", allow_module_level=True)


def ivmc(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(IVMC), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def rows(directory: Path) -> list[dict[str, str]]:
    with open(directory / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def fingerprint(directory: Path) -> str:
    return json.loads((directory / "meta.json").read_text())["scenario_fingerprint"]


# --- stale results under a new label ----------------------------------------------------------

def test_run_out_refuses_another_duration_and_keeps_the_old_results(tmp_path):
    first = ivmc("run", RACE, "--set", "duration_s=2", "--out", "rr", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    csv_text = (tmp_path / "rr" / "results.csv").read_text()

    again = ivmc("run", RACE, "--set", "duration_s=2", "--out", "rr", cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # the same scenario resumes: nothing new
    assert (tmp_path / "rr" / "results.csv").read_text() == csv_text
    meta = (tmp_path / "rr" / "meta.json").read_text()

    other = ivmc("run", RACE, "--set", "duration_s=7", "--out", "rr", cwd=tmp_path)
    assert other.returncode == 2
    assert "duration_s = 2.0" in other.stderr and "duration_s = 7.0" in other.stderr
    assert "--force" in other.stderr
    assert other.stdout == ""  # not the old run's summary
    assert (tmp_path / "rr" / "meta.json").read_text() == meta
    assert (tmp_path / "rr" / "results.csv").read_text() == csv_text


def test_run_out_refuses_a_preset_in_another_scenarios_directory(tmp_path):
    assert ivmc("run", RACE, "--set", "duration_s=2", "--out", "rr", cwd=tmp_path).returncode == 0
    other = ivmc("run", "preset:xenloop", "--out", "rr", cwd=tmp_path)
    assert other.returncode == 2
    assert 'name = "race-exposure"' in other.stderr and 'name = "xenloop"' in other.stderr


def test_run_out_force_starts_over(tmp_path):
    assert ivmc("run", RACE, "--set", "duration_s=2", "--out", "rr", cwd=tmp_path).returncode == 0
    old = fingerprint(tmp_path / "rr")
    forced = ivmc("run", RACE, "--set", "duration_s=7", "--out", "rr", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert fingerprint(tmp_path / "rr") != old
    assert len(rows(tmp_path / "rr")) == 1
    meta = json.loads((tmp_path / "rr" / "meta.json").read_text())
    assert "duration_s = 7.0" in meta["scenario_toml"]


def test_sweep_out_refuses_another_base_scenario(tmp_path):
    sweep = ["sweep", RACE, "--param", "warmup_s=0,0.1", "--out", "sw"]
    first = ivmc(*sweep, "--set", "duration_s=2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    csv_text = (tmp_path / "sw" / "results.csv").read_text()
    old = fingerprint(tmp_path / "sw")

    other = ivmc(*sweep, "--set", "duration_s=50", cwd=tmp_path)
    assert other.returncode == 2
    assert "0 runs made" not in other.stdout
    assert "duration_s = 2.0" in other.stderr and "duration_s = 50.0" in other.stderr
    assert (tmp_path / "sw" / "results.csv").read_text() == csv_text
    assert fingerprint(tmp_path / "sw") == old

    other_backend = ivmc(*sweep, "--set", "duration_s=2", "--backend", "host", cwd=tmp_path)
    assert other_backend.returncode == 2
    assert "backend: sim there, host now" in other_backend.stderr


# --- silent overflow ---------------------------------------------------------------------------

@pytest.mark.parametrize("assignment, message", [
    ("duration_s=1e10", "duration_s: expected at most 1000000"),
    ("duration_s=1e300", "duration_s: expected at most 1000000"),
    ("platform.hosts=100000000000", "would need about 260 TB"),
    ("vm.ram_mib=9223372036854775807", "vm[0].ram_mib: expected at most 16777216 MiB"),
    ("workload.rate_per_s=1e300", "workload[0].rate_per_s: expected at most 1000000000"),
])
def test_values_beyond_the_bounds_are_refused_before_running(tmp_path, assignment, message):
    for command in (["validate", RACE], ["run", RACE]):
        proc = ivmc(*command, "--set", assignment, cwd=tmp_path, timeout=60)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert message in proc.stderr
        assert "events" not in proc.stdout  # nothing ran


def test_a_sweep_refuses_values_beyond_the_bounds_before_running(tmp_path):
    for args in (["--set", "duration_s=1e10", "--param", "warmup_s=0,0.1"],
                 ["--param", "duration_s=2,1e300"],
                 ["--param", "platform.hosts=2,100000000000"]):
        proc = ivmc("sweep", RACE, *args, "--out", "sw", cwd=tmp_path, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "expected at most" in proc.stderr or "would need about" in proc.stderr
        assert not (tmp_path / "sw" / "results.csv").exists()


def test_an_out_of_range_value_in_a_file_is_reported_at_its_line(tmp_path):
    text = Path(RACE).read_text().replace("ram_mib = 64", "ram_mib = 9223372036854775807", 1)
    assert text != Path(RACE).read_text()
    (tmp_path / "huge.toml").write_text(text)
    line = text.splitlines().index("ram_mib = 9223372036854775807") + 1
    proc = ivmc("validate", "huge.toml", cwd=tmp_path)
    assert proc.returncode == 2
    assert f"huge.toml:{line}: vm[0].ram_mib: expected at most 16777216 MiB" in proc.stderr


# --- exits and options -------------------------------------------------------------------------

@pytest.mark.parametrize("param", ["seed=1,2", "duration_s=", "duration_s=1,1", "duration_s",
                                   "nokey=1,2", "duration_s=abc,1"])
def test_an_invalid_param_exits_2_and_runs_nothing(tmp_path, param):
    proc = ivmc("sweep", RACE, "--param", param, "--out", "sw", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip()
    assert not (tmp_path / "sw" / "results.csv").exists()


def test_command_line_errors_exit_2(tmp_path):
    for args in (["run", "--no-such-option"], ["sweep", "--set", "duration_s=2"],
                 ["run", RACE, "--seed", "abc"], ["validate"]):
        proc = ivmc(*args, cwd=tmp_path, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
    assert ivmc("run", "--help", cwd=tmp_path).returncode == 0


def test_set_takes_several_pairs(tmp_path):
    proc = ivmc("run", RACE, "--set", "duration_s=2", "warmup_s=0.5", "--out", "o",
                cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    toml = json.loads((tmp_path / "o" / "meta.json").read_text())["scenario_toml"]
    assert "duration_s = 2.0" in toml and "warmup_s = 0.5" in toml

    # The scenario may follow the pairs.
    proc = ivmc("run", "--set", "duration_s=2", "warmup_s=0.5", RACE, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("race-exposure: 2.000 s simulated")

    proc = ivmc("validate", RACE, "--set", "duration_s=2", "warmup_s=5", cwd=tmp_path)
    assert proc.returncode == 2
    assert "warmup_s: expected a time in [0, duration_s = 2.0)" in proc.stderr

    proc = ivmc("sweep", RACE, "--set", "duration_s=2", "warmup_s=0.5", "--param",
                "membership.period_ms=50,100", "--out", "sw", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(rows(tmp_path / "sw")) == 2
    toml = json.loads((tmp_path / "sw" / "meta.json").read_text())["scenario_toml"]
    assert "duration_s = 2.0" in toml and "warmup_s = 0.5" in toml


# --- feedback ----------------------------------------------------------------------------------

def test_a_sweep_into_a_log_shows_progress_lines_and_ends_with_a_summary(tmp_path):
    proc = ivmc("sweep", RACE, "--param", "membership.period_ms=10,100", "--seeds", "3",
                "--out", "sw", cwd=tmp_path)  # stderr is a pipe here, not a terminal
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "\r" not in proc.stderr
    assert lines and all(line.startswith("sweep: ") for line in lines), proc.stderr
    assert lines[-1].startswith("sweep: 6/6 runs")
    out = proc.stdout.splitlines()
    assert out[0] == "sweep: 6 runs made; results in sw/results.csv"
    header = next(line for line in out if line.startswith("point"))
    assert header.split()[:3] == ["point", "membership.period_ms", "seeds"]
    assert "stream_mbps" in header and "race_exposure" in header
    points = [line.split() for line in out if line[:1].isdigit()]
    assert [p[:3] for p in points] == [["0", "10", "3"], ["1", "100", "3"]]
    assert all("±" in line for line in out if line[:1].isdigit())


# --- ivmc summarize ----------------------------------------------------------------------------

def test_summarize_prints_the_sweeps_table_for_an_existing_output(tmp_path):
    sweep = ivmc("sweep", RACE, "--set", "duration_s=3", "--param", "membership.period_ms=10,100",
                 "--seeds", "2", "--out", "sw", cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr
    table = sweep.stdout[sweep.stdout.index("\npoint") + 1:]

    summary = ivmc("summarize", "sw", cwd=tmp_path, timeout=60)
    assert summary.returncode == 0, summary.stderr
    assert summary.stdout == "sw: 4 runs\n\n" + table  # the same table, for the same rows

    data = json.loads(ivmc("summarize", "sw", "--json", cwd=tmp_path, timeout=60).stdout)
    assert data["params"] == ["membership.period_ms"]
    assert [p["params"] for p in data["points"]] == [{"membership.period_ms": "10"},
                                                     {"membership.period_ms": "100"}]
    by_point: dict[str, list[float]] = {}
    for row in rows(tmp_path / "sw"):
        by_point.setdefault(row["point"], []).append(float(row["race_exposure"]))
    for p in data["points"]:
        xs = by_point[str(p["point"])]
        assert p["seeds"] == len(xs) == 2
        m = p["metrics"]["race_exposure"]
        assert m["n"] == 2 and m["mean"] == pytest.approx(sum(xs) / 2)
        # Student's t, 1 degree of freedom: 12.706 * sd / sqrt(2) = 12.706 * |x1 - x2| / 2.
        assert m["ci95"] == pytest.approx(12.706 * abs(xs[0] - xs[1]) / 2)


def test_summarize_a_run_output_and_refuse_a_directory_without_results(tmp_path):
    assert ivmc("run", RACE, "--set", "duration_s=2", "--out", "rr", cwd=tmp_path).returncode == 0
    one = ivmc("summarize", "rr", cwd=tmp_path, timeout=60)
    assert one.returncode == 0, one.stderr
    lines = one.stdout.splitlines()
    assert lines[0] == "rr: 1 runs"
    assert lines[2].split()[:2] == ["point", "seeds"]
    assert lines[3].split()[:2] == ["0", "1"]

    (tmp_path / "empty").mkdir()
    for directory in ("empty", "missing"):
        proc = ivmc("summarize", directory, cwd=tmp_path, timeout=60)
        assert proc.returncode == 2
        assert proc.stdout == ""
        assert directory in proc.stderr
    (tmp_path / "empty" / "results.csv").write_text("")
    proc = ivmc("summarize", "empty", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and "no complete row" in proc.stderr


# --- a run's summary with many workloads -------------------------------------------------------

def many_workloads(n: int) -> str:
    """A scenario with n stream workloads between 2n VMs on two hosts."""
    text = 'name = "many"\nduration_s = 0.2\n\n[platform]\nhosts = 2\n'
    for i in range(2 * n):
        text += f'\n[[vm]]\nname = "v{i}"\nhost = {i % 2}\nram_mib = 64\n'
    for i in range(n):
        text += (f'\n[[workload]]\nkind = "udp_stream"\nfrom = "v{2 * i}"\nto = "v{2 * i + 1}"\n'
                 f'message_bytes = 64\nrate_per_s = {1000 * (i + 1)}\n')
    return text


def test_a_run_with_many_workloads_prints_aggregates_not_a_line_each(tmp_path):
    (tmp_path / "few.toml").write_text(many_workloads(20))
    few = ivmc("run", "few.toml", cwd=tmp_path, timeout=120)
    assert few.returncode == 0, few.stderr
    assert sum("udp_stream" in line for line in few.stdout.splitlines()) == 20
    assert "aggregated" not in few.stdout

    (tmp_path / "many.toml").write_text(many_workloads(60))
    many = ivmc("run", "many.toml", cwd=tmp_path, timeout=120)
    assert many.returncode == 0, many.stderr
    assert "60 workloads (over 20: aggregated" in many.stdout
    assert "60 streams: total" in many.stdout
    # The slowest three are named by their index: the lowest offered rates.
    slowest = [line.split(":")[0].strip() for line in many.stdout.splitlines()
               if line.startswith("    w")]
    assert slowest == ["w0", "w1", "w2"]
    assert len(many.stdout.splitlines()) < 20


# --- SimGrid's log stays out of the output -------------------------------------------------

def test_simgrid_log_lines_never_reach_stdout_or_stderr(tmp_path):
    # A 1 MiB VM migrates in no time, and SimGrid is then asked to sleep 4e-16 s, less than its
    # numerical accuracy: it logs "The parameter to sleep_for() is smaller than the SimGrid
    # numerical accuracy" (at 3.62 s with the scenario's seed).
    tiny = ["--set", "duration_s=4", "vm[0].ram_mib=1"]
    for args in (["run", RACE, *tiny], ["run", RACE, *tiny, "--out", "o"],
                 ["sweep", RACE, *tiny, "--param", "membership.period_ms=10,20", "--out", "sw"]):
        proc = ivmc(*args, cwd=tmp_path, timeout=120)
        assert proc.returncode == 0, proc.stderr
        for text in (proc.stdout, proc.stderr):
            assert "numerical accuracy" not in text and "s4u_actor" not in text, text
    # With --out SimGrid's lines are kept in the output directory, each run's after its pid.
    log = (tmp_path / "o" / "simgrid.log").read_text()
    assert log.startswith("ivmc: SimGrid log of process ")
    assert "[s4u_actor/INFO] The parameter to sleep_for() is smaller than the SimGrid " \
           "numerical accuracy" in log
    assert (tmp_path / "sw" / "simgrid.log").read_text().count("numerical accuracy") == 2


# --- progress on a long single run -------------------------------------------------------------

def test_a_long_run_into_a_log_shows_progress_lines_and_quiet_shows_none(tmp_path):
    # stderr is a pipe: a line every --progress-every seconds; the summary on stdout unchanged.
    args = ["run", RACE, "--set", "duration_s=200", "--progress-every", "0.1"]
    proc = ivmc(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "\r" not in proc.stderr
    assert lines, "no progress line"
    assert all(line.startswith("race-exposure: ") and "s simulated (" in line for line in lines)
    done = [float(line.split()[1].split("/")[0]) for line in lines]
    assert done == sorted(done) and done[-1] <= 200
    assert all(line.split()[1].endswith("/200") for line in lines)
    assert "s simulated/s" in lines[-1] and "left" in lines[-1]
    assert proc.stdout.startswith("race-exposure: 200.000 s simulated")

    quiet = ivmc(*args, "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""


# --- per-change records ------------------------------------------------------------------------

def test_changes_csv_gives_each_change_and_its_stale_sends(tmp_path):
    # 10 sends/s: with a scan every T, a change's window holds about 10 * T / 2 sends.
    proc = ivmc("sweep", RACE, "--set", "duration_s=30", "output.changes=true",
                "workload[0].rate_per_s=10", "--param", "membership.period_ms=20,200",
                "--seeds", "3", "--out", "sw", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = rows(tmp_path / "sw")
    with open(tmp_path / "sw" / "changes.csv", newline="") as f:
        changes = list(csv.DictReader(f))
    assert list(changes[0].keys()) == [
        "point", "seed", "membership.period_ms", "time_s", "kind", "vm", "from_host", "to_host",
        "observers", "notified", "detection_max_s", "detection_mean_s", "stale_sends",
        "race_operations", "race_errors"]
    for run in results:
        mine = [c for c in changes if (c["point"], c["seed"]) == (run["point"], run["seed"])]
        # Every migration of the run is a row (a moves between the two hosts), in time order.
        assert len(mine) == int(float(run["migrations"])) > 0
        assert all(c["kind"] == "migration" and c["vm"] == "a" for c in mine)
        assert all({c["from_host"], c["to_host"]} == {"0", "1"} for c in mine)
        times = [float(c["time_s"]) for c in mine]
        assert times == sorted(times)
        # Each stale send is in exactly one change's window: they add up to the run's total.
        assert sum(int(c["stale_sends"]) for c in mine) == int(float(run["sends_in_race_window"]))
        assert sum(int(c["race_operations"]) for c in mine) <= int(float(run["race_operations"]))
        # b observes each of a's moves and learns of it within a scan period (plus delays).
        period_s = float(run["membership.period_ms"]) / 1000
        for c in mine:
            assert c["observers"] == "1" and int(c["notified"]) <= 1
            if c["notified"] == "1":
                assert 0 <= float(c["detection_max_s"]) <= period_s + 0.01
    # What a researcher computes from the file: P(at least one stale send per change), which
    # grows with the scan period, and the aggregate exposure agrees with results.csv.
    def p_stale(period: str) -> float:
        cs = [c for c in changes if c["membership.period_ms"] == period]
        return sum(int(c["stale_sends"]) > 0 for c in cs) / len(cs)
    assert p_stale("20") < 0.3 < p_stale("200") <= 1
    stale = sum(int(c["stale_sends"]) for c in changes)
    assert stale == sum(int(float(r["sends_in_race_window"])) for r in results)


def test_without_output_changes_no_changes_csv(tmp_path):
    assert ivmc("run", RACE, "--set", "duration_s=2", "--out", "o", cwd=tmp_path).returncode == 0
    assert not (tmp_path / "o" / "changes.csv").exists()
    # Turning it on is another scenario: refused for that directory (fingerprint).
    other = ivmc("run", RACE, "--set", "duration_s=2", "output.changes=true", "--out", "o",
                 cwd=tmp_path)
    assert other.returncode == 2 and "changes = true" in other.stderr
    # Only the simulator records changes: another backend refuses the key before anything runs.
    host = ivmc("run", RACE, "--set", "duration_s=2", "output.changes=true", "--backend", "host",
                cwd=tmp_path)
    assert host.returncode == 2
    assert "output.changes: true: changes.csv is recorded by the simulator only" in host.stderr


# --- a crash or SIGTERM never leaves complete-looking results ----------------------------------

def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_sigterm_during_a_run_leaves_no_result_row(tmp_path):
    proc = subprocess.Popen([str(IVMC), "run", RACE, "--set", "duration_s=100000", "--out", "o"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(tmp_path / "o" / "meta.json", proc)
    time.sleep(0.5)  # the run is under way in its child
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM" in err and out == ""
    csv_path = tmp_path / "o" / "results.csv"
    assert not csv_path.exists() or csv_path.read_text() == ""
    meta = json.loads((tmp_path / "o" / "meta.json").read_text())
    assert meta["state"] == "interrupted" and meta["runs_done"] == 0
    assert not (tmp_path / "o" / "summary.txt").exists()


def test_sigterm_during_a_sweep_keeps_only_complete_rows(tmp_path):
    proc = subprocess.Popen([str(IVMC), "sweep", RACE, "--set", "duration_s=1", "--param",
                             "membership.period_ms=" + ",".join(str(10 + i) for i in range(200)),
                             "--jobs", "2", "--out", "sw"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    csv_path = tmp_path / "sw" / "results.csv"
    deadline = time.monotonic() + 120
    while not csv_path.exists() or csv_path.read_text().count("\n") < 4:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    text = csv_path.read_text()
    assert text.endswith("\n")
    with open(csv_path, newline="") as f:
        table = list(csv.reader(f))
    assert all(len(row) == len(table[0]) for row in table)
    meta = json.loads((tmp_path / "sw" / "meta.json").read_text())
    assert meta["state"] == "interrupted"
    assert meta["runs_done"] == len(table) - 1 < 200


def test_race_backends_prints_each_backends_means_per_value(tmp_path: Path) -> None:
    """scripts/race_backends.py: one sweep per backend, then a table of means per value; run
    again it resumes (nothing re-run) and --table-only prints the same table."""
    script = ROOT / "scripts" / "race_backends.py"
    scenario = str(ROOT / "scenarios" / "examples" / "kvm_migration.toml")
    args = [
        "/usr/bin/python3", str(script), scenario, "--param", "membership.period_ms=500,4000",
        "--seeds", "2", "--backends", "sim", "--out", str(tmp_path / "rb"), "--ivmc", str(IVMC),
        "--metrics", "race_exposure,migrations", "--set", "duration_s=12",
    ]
    first = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    results = rows(tmp_path / "rb" / "sim")
    assert len(results) == 4
    tables = first.stdout.split("race_exposure:")[1]
    means = []
    for point, value in enumerate(["500", "4000"]):
        mine = [float(r["race_exposure"]) for r in results if r["point"] == str(point)]
        assert len(mine) == 2
        means.append(sum(mine) / 2)
        line = next(l for l in tables.splitlines() if l.startswith(f"| {value} |"))
        shown = float(line.split("|")[2].split()[0])
        assert shown == pytest.approx(means[-1], rel=2e-3)
    # The longer period leaves the stale view in place longer: more exposure.
    assert means[1] > means[0] > 0
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "0 runs made" in again.stdout + again.stderr
    only = subprocess.run(args + ["--table-only"], capture_output=True, text=True, timeout=60)
    assert only.returncode == 0 and only.stdout.split("$")[-1] in first.stdout
    bad = subprocess.run(args[:4] + ["membership.period_ms", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "KEY=V1,V2" in bad.stderr


def test_race_backends_compares_the_seeds_every_backend_made(tmp_path: Path) -> None:
    """scripts/race_backends.py --table-only: a seed one backend refused (its draws) is left out
    of every backend's mean at that value, and the table says so."""
    script = ROOT / "scripts" / "race_backends.py"
    meta = {"params": [{"key": "membership.period_ms", "values": ["500", "4000"]}]}
    made = {"sim": [(0, 1, 0.1), (0, 2, 0.3), (1, 1, 0.2), (1, 2, 0.4)],
            "kvm": [(0, 2, 0.5), (1, 1, 0.6), (1, 2, 0.8)]}  # seed 1 at 500 refused on kvm
    for backend, runs in made.items():
        d = tmp_path / "rb" / backend
        d.mkdir(parents=True)
        (d / "meta.json").write_text(json.dumps(meta))
        (d / "results.csv").write_text(
            "point,seed,race_exposure\n" + "".join(f"{p},{s},{x}\n" for p, s, x in runs))
    out = subprocess.run(
        ["/usr/bin/python3", str(script), "scenario.toml", "--param",
         "membership.period_ms=500,4000", "--seeds", "2", "--backends", "sim,kvm", "--out",
         str(tmp_path / "rb"), "--metrics", "race_exposure", "--table-only"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "left out (refused or not made on another backend): sim membership.period_ms=500 " \
        "seed(s) 1" in out.stdout
    cells = {l.split("|")[1].strip(): [c.strip() for c in l.split("|")[2:4]]
             for l in out.stdout.splitlines() if l.startswith("| 500 ") or l.startswith("| 4000 ")}
    assert cells["500"] == ["0.3", "0.5"]  # seed 2 alone on both
    assert cells["4000"] == ["0.3 (0.2-0.4)", "0.7 (0.6-0.8)"]
