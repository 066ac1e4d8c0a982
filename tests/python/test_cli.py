"""The ivmc command line as a new user meets it (issue 19), run as the real binary: an --out
directory never mixes scenarios, numbers out of range are refused by validate, input errors
exit 2.

Run: IVMC_BIN=build/release/cli/ivmc /usr/bin/python3 -m pytest -q tests/python/test_cli.py
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
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
