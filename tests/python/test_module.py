"""Tests of the ivmc Python package (python/): scenarios, errors, runs and sweeps.

Run with the build's package first on the path, as ctest does:
    PYTHONPATH=build/release/python /usr/bin/python3 -m pytest -q tests/python
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import ivmc


def tiny(**changes: Any) -> dict[str, Any]:
    """A 2-VM scenario of 50 simulated ms: one Poisson-paced stream between co-resident VMs
    (so the seed matters), a run of well under a second."""
    scenario: dict[str, Any] = {
        "name": "tiny",
        "duration_s": 0.05,
        "seed": 5,
        "platform": {"hosts": 2},
        "vm": [{"name": "a", "host": 0}, {"name": "b", "host": 0}],
        "workload": [
            {
                "kind": "tcp_stream",
                "from": "a",
                "to": "b",
                "message_bytes": 4096,
                "rate_per_s": 20000,
                "arrivals": "poisson",
            }
        ],
    }
    scenario.update(changes)
    return scenario


def without_wall(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame without wall_s, the one column that differs between equal runs."""
    return frame.drop(columns="wall_s")


def test_import_and_help() -> None:
    """The package imports, and its API documents itself for help()."""
    for name in ivmc.__all__:
        assert hasattr(ivmc, name), name
    for function in (ivmc.load, ivmc.parse, ivmc.to_toml, ivmc.validate, ivmc.presets,
                     ivmc.default, ivmc.run, ivmc.sweep, ivmc.with_overrides):
        assert function.__doc__ and function.__annotations__, function.__name__
    assert "dask" in ivmc.sweep.__doc__


def test_presets() -> None:
    """presets() lists the embedded presets with their systems and summaries."""
    table = ivmc.presets()
    assert list(table.columns) == ["name", "system", "summary"]
    row = table.set_index("name").loc["xenloop"]
    assert row["system"] == "XenLoop" and row["summary"]
    assert (table["summary"].str.len() > 0).all()
    assert ivmc.load("preset:xenloop")["preset"]["name"] == "xenloop"
    assert "[channel]" in ivmc.preset_text("xenloop")
    with pytest.raises(KeyError):
        ivmc.preset_text("no-such-preset")


def test_default_round_trips() -> None:
    """default() goes through to_toml and parse unchanged, and TOML text is read the same."""
    scenario = ivmc.default()
    assert scenario["name"] == "default" and len(scenario["vm"]) == 4
    text = ivmc.to_toml(scenario)
    assert ivmc.parse(text) == scenario
    assert tomllib.loads(text) == scenario
    assert ivmc.to_toml(text) == text
    assert ivmc.load("default") == scenario
    assert ivmc.validate(scenario) == []


def test_bad_toml_names_file_and_line(tmp_path: Path) -> None:
    """A bad file raises ScenarioError at file:line, the text the CLI prints."""
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\nduration_s = 0.1\n\n[channel]\nnotify = "atx"\n')
    with pytest.raises(ivmc.ScenarioError) as caught:
        ivmc.load(str(path))
    assert caught.value.issues[0][0] == f"{path}:5"
    assert caught.value.issues[0][1].startswith("channel.notify: expected one of")
    assert str(caught.value).startswith(f"{path}:5: channel.notify: expected one of")
    assert ivmc.validate(path) == caught.value.issues

    with pytest.raises(ivmc.ScenarioError) as syntax:
        ivmc.parse('name = "x"\nduration_s = [\n', origin="broken.toml")
    assert syntax.value.issues[0][0].startswith("broken.toml:")
    assert "invalid TOML" in syntax.value.issues[0][1]


def test_bad_dict_names_key_path() -> None:
    """A bad dict raises ScenarioError at key paths: unknown keys, unknown VMs, bad values."""
    scenario = tiny()
    scenario["workload"].append({"from": "a", "to": "zz", "colour": "red"})
    scenario["chanel"] = {"notify": "atw"}
    with pytest.raises(ivmc.ScenarioError) as caught:
        ivmc.to_toml(scenario)
    issues = dict(caught.value.issues)
    assert issues["workload[1].to"].startswith('no VM named "zz"')
    assert "unknown key" in issues["workload[1].colour"]
    assert "did you mean `channel`" in issues["chanel"]
    assert "workload[1].to: no VM named" in str(caught.value)
    assert ivmc.validate(scenario) == caught.value.issues

    assert ivmc.validate(tiny(duration_s="long")) == [
        ("duration_s", 'expected a number; got "long"')
    ]
    assert ivmc.validate(tiny(duration_s=None))[0][0] == "duration_s"
    assert ivmc.validate(tiny(vm=[{"name": "a"}]))[0] == (
        "vm[0]", "missing the required key `host`")

    with pytest.raises(ivmc.ScenarioError) as override:
        ivmc.run(tiny(), set={"channel.notify": "atx"})
    assert override.value.issues[0][0] == "channel.notify"
    with pytest.raises(ivmc.ScenarioError) as index:
        ivmc.with_overrides(tiny(), ["workload[3].message_bytes=64"])
    assert index.value.issues[0][0] == "workload[3].message_bytes"


def test_run_gives_plausible_metrics() -> None:
    """run() of a short 2-VM scenario returns one row of metrics with throughput."""
    frame = ivmc.run(tiny())
    assert len(frame) == 1
    assert list(frame.columns[:1]) == ["seed"] and list(frame.columns[-2:]) == ["events", "wall_s"]
    row = frame.iloc[0]
    assert row["seed"] == 5
    assert row["w0_mbps"] > 0 and row["stream_mbps"] > 0
    assert row["w0_local_share"] > 0.9  # co-resident: the shared-memory channel
    assert row["events"] > 0 and row["wall_s"] > 0
    assert frame["w0_mbps"].dtype == "float64" and frame["events"].dtype == "int64"
    assert "tcp_stream" in frame.attrs["summary"]
    assert ivmc.parse(frame.attrs["scenario"])["duration_s"] == 0.05


def test_same_seed_same_numbers() -> None:
    """Two runs with the same seed are identical but for wall_s; another seed differs."""
    first = ivmc.run(tiny(), seed=7)
    second = ivmc.run(tiny(), seed=7)
    pd.testing.assert_frame_equal(without_wall(first), without_wall(second))
    other = ivmc.run(tiny(), seed=8)
    assert other["seed"][0] == 8
    assert not without_wall(other).drop(columns="seed").equals(
        without_wall(first).drop(columns="seed"))
    # Overrides then the seed, as `ivmc run --set ... --seed`.
    changed = ivmc.run(tiny(), seed=7, set={"workload[0].message_bytes": 1024})
    assert changed["w0_messages_per_s"][0] == pytest.approx(first["w0_messages_per_s"][0], rel=0.2)
    assert changed["w0_mbps"][0] < first["w0_mbps"][0]


PARAMS = {"workload[0].message_bytes": [1024, 8192]}


def test_sweep_local_writes_results_and_resumes(tmp_path: Path) -> None:
    """A local sweep writes results.csv into `out`; running it again makes nothing new and
    returns the same rows."""
    out = tmp_path / "sweep"
    frame = ivmc.sweep(tiny(), PARAMS, seeds=2, jobs=2, out=out)
    assert (out / "results.csv").exists() and (out / "meta.json").exists()
    assert list(frame[["point", "seed"]].itertuples(index=False, name=None)) == [
        (0, 5), (0, 6), (1, 5), (1, 6)]
    assert list(frame["workload[0].message_bytes"]) == [1024, 1024, 8192, 8192]
    assert frame["workload[0].message_bytes"].dtype == "int64"
    for count in ("sends", "notifications", "migrations", "lost_messages", "race_operations"):
        assert frame[count].dtype == "int64", count
    for measure in ("w0_mbps", "w0_local_share", "race_exposure", "pool_utilisation"):
        assert frame[measure].dtype == "float64", measure
    assert (frame["sends"] > 0).all()
    again = ivmc.sweep(tiny(), PARAMS, seeds=2, jobs=2, out=out)
    pd.testing.assert_frame_equal(frame, again)
    # The rows match single runs of the same points.
    single = ivmc.run(tiny(), seed=6, set={"workload[0].message_bytes": 8192})
    assert single["w0_mbps"][0] == frame["w0_mbps"][3]


def test_sweep_invalid_point_names_it() -> None:
    """An invalid point stops the sweep before anything runs, naming the point and key, the
    same way locally and with a client."""
    params = {"workload[0].to": ["b", "zz"]}
    with pytest.raises(ivmc.ScenarioError) as local:
        ivmc.sweep(tiny(), params)
    where, what = local.value.issues[0]
    assert where == "sweep point 1 (workload[0].to=zz): workload[0].to"
    assert what.startswith('no VM named "zz"')
    with pytest.raises(ivmc.ScenarioError) as remote:
        ivmc.sweep(tiny(), params, client=object())  # never reached: the check comes first
    assert remote.value.issues == local.value.issues


def test_sweep_on_dask_matches_local() -> None:
    """2 values x 2 seeds on a 2-worker Dask LocalCluster give the local sweep's numbers."""
    distributed = pytest.importorskip("distributed")
    local = ivmc.sweep(tiny(), PARAMS, seeds=2, jobs=2)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster, distributed.Client(cluster) as client:
        remote = ivmc.sweep(tiny(), PARAMS, seeds=2, client=client)
    assert list(remote.columns) == list(local.columns)
    pd.testing.assert_frame_equal(without_wall(local), without_wall(remote))
    assert (remote["wall_s"] > 0).all()
    assert local["w0_mbps"][0] != local["w0_mbps"][1]  # the seeds differ


def test_backends_and_unknown_backend() -> None:
    """The build's backends start with "sim"; an unknown name is refused naming them all,
    before anything runs."""
    names = ivmc.backends()
    assert names[0] == "sim" and len(set(names)) == len(names)
    with pytest.raises(ValueError) as run_error:
        ivmc.run(tiny(), backend="qemu")
    assert "unknown backend 'qemu'" in str(run_error.value)
    assert all(name in str(run_error.value) for name in names)
    with pytest.raises(ValueError) as sweep_error:
        ivmc.sweep(tiny(), PARAMS, backend="qemu")
    assert "unknown backend 'qemu'" in str(sweep_error.value)
    frame = ivmc.run(tiny(), seed=7, backend="sim")
    assert frame.attrs["backend"] == "sim"
    pd.testing.assert_frame_equal(without_wall(frame), without_wall(ivmc.run(tiny(), seed=7)))


def test_backend_refusal_names_the_key() -> None:
    """A backend that cannot play part of a scenario refuses it before anything starts, naming
    the key (the kvm backend plays no events; no guest boots here)."""
    if "kvm" not in ivmc.backends():
        pytest.skip("this build has no kvm backend")
    scenario = tiny(event=[{"kind": "migrate", "at_s": 0.01, "vm": "a", "host": 1}])
    with pytest.raises(ivmc.ScenarioError) as refused:
        ivmc.run(scenario, backend="kvm")
    where, what = refused.value.issues[0]
    assert where == "event[0]"
    assert "--ignore-events" in what
    with pytest.raises(ivmc.ScenarioError) as swept:
        ivmc.sweep(scenario, PARAMS, backend="kvm")
    assert swept.value.issues[0][0] == "sweep point 0 (workload[0].message_bytes=1024): event[0]"


def test_sweep_set_changes_the_base_first(tmp_path: Path) -> None:
    """sweep(set=...) is `ivmc sweep --set`: the overrides apply to the base before each point's
    parameters, and the seeds start from the overridden seed."""
    changed = ivmc.sweep(
        tiny(), PARAMS, seeds=2, jobs=2, set={"duration_s": 0.03, "seed": 11}
    )
    direct = ivmc.sweep(tiny(duration_s=0.03, seed=11), PARAMS, seeds=2, jobs=2)
    pd.testing.assert_frame_equal(without_wall(changed), without_wall(direct))
    assert list(changed["seed"]) == [11, 12, 11, 12]
    # A parameter wins over a set of the same key (it applies after).
    both = ivmc.sweep(tiny(), PARAMS, jobs=2, set=["workload[0].message_bytes=64"])
    assert list(both["workload[0].message_bytes"]) == [1024, 8192]
    plain = ivmc.sweep(tiny(), PARAMS, jobs=2)
    pd.testing.assert_frame_equal(without_wall(both), without_wall(plain))


def test_examples_ship_in_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ivmc.example finds scenarios/examples/ from any working directory."""
    monkeypatch.chdir(tmp_path)
    assert "race_exposure" in ivmc.examples()
    race = ivmc.example("race_exposure")
    repo = Path(__file__).resolve().parents[2] / "scenarios" / "examples" / "race_exposure.toml"
    assert race == ivmc.load(repo)
    with pytest.raises(ValueError, match="no example scenario 'nope'"):
        ivmc.example("nope")


def test_summarize_and_force(tmp_path: Path) -> None:
    """ivmc.summarize gives an output directory's summary table as a DataFrame (the means of
    the sweep's rows); ivmc.sweep(force=True) starts over where another scenario's results are,
    which without it is refused."""
    out = tmp_path / "sweep"
    frame = ivmc.sweep(tiny(), PARAMS, seeds=2, jobs=2, out=out)
    table = ivmc.summarize(out)
    assert list(table["point"]) == [0, 1]
    assert list(table["workload[0].message_bytes"]) == [1024, 8192]
    assert list(table["seeds"]) == [2, 2]
    means = frame.groupby("point")["stream_mbps"].mean()
    assert list(table["stream_mbps_mean"]) == pytest.approx(list(means))
    assert (table["stream_mbps_ci95"] >= 0).all()
    with pytest.raises(RuntimeError, match="no results.csv"):
        ivmc.summarize(tmp_path)

    longer = tiny(duration_s=0.06)
    with pytest.raises(RuntimeError, match="duration_s"):
        ivmc.sweep(longer, PARAMS, seeds=1, out=out)
    forced = ivmc.sweep(longer, PARAMS, seeds=1, out=out, force=True)
    assert len(forced) == 2
    assert "duration_s = 0.06" in (out / "meta.json").read_text()


def test_run_gives_its_changes_with_output_changes() -> None:
    """With output.changes, ivmc.run hands the run's membership changes back (changes.csv's
    columns); their stale sends add up to the run's sends_in_race_window."""
    s = tiny(duration_s=3, generator=[{"kind": "migrate", "rate_per_s": 2, "vms": ["a"]}])
    df = ivmc.run(s, set={"output.changes": True, "workload[0].rate_per_s": 1000})
    changes = df.attrs["changes"]
    assert len(changes) == df["migrations"][0] > 0
    assert set(changes["kind"]) == {"migration"} and set(changes["vm"]) == {"a"}
    assert changes["stale_sends"].sum() == df["sends_in_race_window"][0]
    assert "changes" not in ivmc.run(s).attrs
