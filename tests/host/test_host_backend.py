"""The host backend end to end, as a user runs it: `ivmc run SCENARIO --backend host` next to
the simulation of the same scenario, with real VM processes, real shared memory and real
membership sources. Every check here is on what the test itself can observe: the results
files, the exit status, stderr, and the machine's processes and shared memory afterwards."""
import csv
import glob
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

IVMC = os.environ.get("IVMC_BIN", "build/release/cli/ivmc")

PAIR = """\
name = "{name}"
duration_s = {duration}
[platform]
hosts = 2
[[vm]]
name = "a"
host = 0
ram_mib = 64
[[vm]]
name = "b"
host = 0
ram_mib = 64
[membership]
detection = "periodic"
period_ms = 50
race = "{race}"
[[workload]]
kind = "udp_stream"
from = "a"
to = "b"
message_bytes = 64
rate_per_s = 1000
arrivals = "poisson"
"""

SCRIPTED = """\
[[event]]
kind = "migrate"
at_s = 0.7
vm = "a"
host = 1
[[event]]
kind = "migrate"
at_s = 1.6
vm = "a"
host = 0
"""

# Two moves whose race windows are long against a loaded machine's wake-up delays: with scans
# every 200 ms from 0, each lands 54 ms after it starts (64 MiB at 10 Gbit/s), about 96 ms
# before the next scan.
SCRIPTED_LONG = """\
[[event]]
kind = "migrate"
at_s = 0.45
vm = "a"
host = 1
[[event]]
kind = "migrate"
at_s = 1.25
vm = "a"
host = 0
"""

POISSON = """\
[[generator]]
kind = "migrate"
rate_per_s = 3
vms = ["a"]
"""


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def run(args, **kw):
    return subprocess.run([IVMC] + args, capture_output=True, text=True, timeout=300, **kw)


def results(out_dir):
    with open(os.path.join(out_dir, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    return rows[0], list(rows[0].keys())


def both(tmp, scenario):
    sim_dir, host_dir = os.path.join(tmp, "sim"), os.path.join(tmp, "host")
    r = run(["run", scenario, "--out", sim_dir, "--quiet"])
    assert r.returncode == 0, r.stderr
    r = run(["run", scenario, "--backend", "host", "--out", host_dir, "--quiet"])
    assert r.returncode == 0, r.stderr
    return results(sim_dir), results(host_dir)


def num(row, key):
    return float(row[key])


def test_scripted_migrations_agree_with_the_simulation():
    with tempfile.TemporaryDirectory() as tmp:
        text = PAIR.format(name="scripted", duration=2.5, race="resolution") + SCRIPTED_LONG
        s = write(tmp, "pair.toml", text.replace("period_ms = 50", "period_ms = 200"))
        (sim, sim_cols), (host, host_cols) = both(tmp, s)
        assert host_cols == sim_cols  # the same columns, in the same order
        # Nothing lost, duplicated or reordered across both moves (the VMs check every byte).
        assert num(host, "lost_messages") == 0 and num(host, "lost_bytes") == 0
        assert num(host, "migrations") == 2
        # Every link send went one way or the other.
        assert num(host, "frames_local") + num(host, "frames_remote") == num(host, "sends")
        assert num(host, "sends") > 1500  # ~1000/s for 2.5 s, Poisson
        # The race windows are the same scans on the same grid (every 200 ms from the start):
        # each move is seen at the next scan, about 96 ms after it lands, in both.
        assert num(sim, "race_exposure") > 0
        ratio = num(host, "race_exposure") / num(sim, "race_exposure")
        assert 0.6 < ratio < 1.6, (num(host, "race_exposure"), num(sim, "race_exposure"))
        # a is away from 0.5 s to 1.3 s of 2.5: the local share follows the same timeline.
        assert abs(num(host, "w0_local_share") - num(sim, "w0_local_share")) < 0.12
        assert num(host, "switches_to_local") >= 2  # the start, and the return
        assert num(host, "membership_probes") == pytest.approx(num(sim, "membership_probes"),
                                                               rel=0.1)


def test_poisson_migrations_resolution_loses_nothing_and_none_counts_losses():
    with tempfile.TemporaryDirectory() as tmp:
        res = write(tmp, "res.toml",
                    PAIR.format(name="poisson", duration=3.0, race="resolution") + POISSON)
        (sim, sim_cols), (host, host_cols) = both(tmp, res)
        assert host_cols == sim_cols
        assert num(host, "migrations") >= 3  # rate 3/s over 3 s, seed 1
        assert num(host, "lost_messages") == 0
        assert num(host, "fallbacks") >= 1  # stale sends caught and re-sent
        none = write(tmp, "none.toml",
                     PAIR.format(name="poisson", duration=3.0, race="none") + POISSON)
        out = os.path.join(tmp, "none")
        r = run(["run", none, "--backend", "host", "--out", out, "--quiet"])
        assert r.returncode == 0, r.stderr
        row, _ = results(out)
        # Without race handling every send into a stale channel is lost, and counted: at least
        # every link send that went neither local nor remote (what the end-to-end count adds
        # are messages written into a ring the receiver had already left).
        assert num(row, "lost_messages") > 0
        assert num(row, "lost_messages") >= (num(row, "sends") - num(row, "frames_local")
                                             - num(row, "frames_remote"))
        assert num(row, "fallbacks") == 0


def test_a_scenario_the_backend_cannot_play_is_refused_at_its_line():
    with tempfile.TemporaryDirectory() as tmp:
        text = PAIR.format(name="small", duration=1.0, race="resolution").replace(
            "message_bytes = 64", "message_bytes = 16")
        s = write(tmp, "small.toml", text)
        r = run(["run", s, "--backend", "host"])
        assert r.returncode == 2
        line = text.splitlines().index("message_bytes = 16") + 1
        assert f"{s}:{line}: workload[0].message_bytes: 16 B" in r.stderr, r.stderr
        assert "nothing ran" in r.stderr


def leftovers(pid):
    return glob.glob(f"/dev/shm/ivmc-host-{pid}-*")


def vm_processes(tag):
    """The VM processes of runs started with IVMC_TEST_TAG=tag (they inherit the environment),
    whoever their parent is now: other runs on the machine do not count."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"ivmc-host-vm" not in f.read():
                    continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"IVMC_TEST_TAG={tag}".encode() in f.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            continue  # gone meanwhile
    return found


def tagged_env(**extra):
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    return tag, dict(os.environ, IVMC_TEST_TAG=tag, **extra)


def test_a_crashed_vm_fails_the_run_with_its_name_and_everything_is_cleaned_up():
    real = os.environ.get("IVMC_HOST_VM_REAL")
    assert real and os.access(real, os.X_OK), "IVMC_HOST_VM_REAL names the built VM program"
    with tempfile.TemporaryDirectory() as tmp:
        # A VM program that is the real one, except that VM b dies of SIGSEGV after 1.5 s.
        wrapper = write(tmp, "crashing-vm", textwrap.dedent(f"""\
            #!/bin/sh
            case "$*" in *"--name b"*) (sleep 1.5; kill -SEGV $$) & ;; esac
            exec {real} "$@"
            """))
        os.chmod(wrapper, 0o755)
        s = write(tmp, "pair.toml", PAIR.format(name="crash", duration=4.0, race="resolution"))
        tag, env = tagged_env(IVMC_HOST_VM=wrapper)
        p = subprocess.Popen([IVMC, "run", s, "--backend", "host", "--quiet"], env=env,
                             stderr=subprocess.PIPE, text=True)
        _, err = p.communicate(timeout=120)
        assert p.returncode != 0
        assert "VM b" in err and "SIGSEGV" in err, err
        assert not leftovers(p.pid)
        assert not vm_processes(tag)


def test_sigint_stops_the_run_and_cleans_up():
    with tempfile.TemporaryDirectory() as tmp:
        s = write(tmp, "pair.toml",
                  PAIR.format(name="long", duration=60.0, race="resolution") + POISSON)
        tag, env = tagged_env()
        p = subprocess.Popen([IVMC, "run", s, "--backend", "host", "--quiet"], env=env,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(2.0)
        assert len(vm_processes(tag)) == 2  # both VMs are running
        assert leftovers(p.pid)  # and both hosts' regions exist
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        assert p.returncode != 0
        assert "interrupted" in err, err
        assert not leftovers(p.pid)
        assert not vm_processes(tag)


def test_pools_and_channels_set_up_once():
    pool = os.path.join(os.path.dirname(__file__), "..", "..", "scenarios", "examples", "pool.toml")
    with tempfile.TemporaryDirectory() as tmp:
        # static_equal: every pair gets pool / max_pairs when its channel is set up, as in the
        # simulation, so the pool's use over time follows the same timeline.
        (sim, sim_cols), (host, host_cols) = both(tmp, pool)
        assert host_cols == sim_cols
        assert num(host, "lost_messages") == 0
        assert num(host, "pool_utilisation") == pytest.approx(num(sim, "pool_utilisation"), rel=0.1)
        # Each of the five pipes between VMs together from the start opened its channel (more
        # may follow: a receiver that stalls past stale_timeout on a loaded machine makes its
        # sender fall back, and a later view change brings it back on a new instance).
        assert num(host, "channels_opened") >= 5
        for w in range(4):
            assert num(host, f"w{w}_local_share") > 0.5
        # proportional (MemPipe): pipes inflate and deflate by renewing their channel.
        out = os.path.join(tmp, "prop")
        r = run(["run", pool, "--backend", "host", "--set", "pool.allocation=proportional",
                 "--out", out, "--quiet"])
        assert r.returncode == 0, r.stderr
        row, _ = results(out)
        assert num(row, "pool_renewals") > 0
        assert num(row, "lost_messages") == 0
        # channel.migration = false: channels only between VMs co-resident at start. The
        # visitor starts on host 1, so its pair never gets one; the others are unchanged.
        out = os.path.join(tmp, "once")
        r = run(["run", pool, "--backend", "host", "--set", "channel.migration=false",
                 "--out", out, "--quiet"])
        assert r.returncode == 0, r.stderr
        row, _ = results(out)
        assert num(row, "w4_local_share") == 0
        assert num(row, "w0_local_share") == 1
        assert num(row, "lost_messages") == 0


def sweep_rows(out_dir):
    with open(os.path.join(out_dir, "results.csv")) as f:
        return list(csv.DictReader(f))


def test_a_host_sweep_resumes_like_a_simulated_one():
    with tempfile.TemporaryDirectory() as tmp:
        s = write(tmp, "pair.toml",
                  PAIR.format(name="sweep", duration=1.5, race="resolution") + POISSON)
        host_dir, sim_dir = os.path.join(tmp, "host"), os.path.join(tmp, "sim")
        args = ["sweep", s, "--param", "membership.period_ms=20,100", "--seeds", "2"]
        r = run(args + ["--backend", "host", "--out", host_dir])
        assert r.returncode == 0, r.stderr
        rows = sweep_rows(host_dir)
        assert len(rows) == 4
        assert all(float(row["lost_messages"]) == 0 for row in rows)
        # The same command again makes nothing: every (point, seed) has its row.
        r = run(args + ["--backend", "host", "--out", host_dir])
        assert r.returncode == 0, r.stderr
        assert "0 runs made" in r.stdout + r.stderr
        assert len(sweep_rows(host_dir)) == 4
        # One more seed makes only the two new runs.
        r = run(["sweep", s, "--param", "membership.period_ms=20,100", "--seeds", "3",
                 "--backend", "host", "--out", host_dir])
        assert r.returncode == 0, r.stderr
        assert "2 runs made" in r.stdout + r.stderr
        assert len(sweep_rows(host_dir)) == 6
        # The simulated sweep of the same command has the same columns.
        r = run(args + ["--out", sim_dir])
        assert r.returncode == 0, r.stderr
        assert list(sweep_rows(sim_dir)[0].keys()) == list(rows[0].keys())


def test_python_sweeps_on_the_host_backend():
    python_dir = os.environ.get("IVMC_PYTHONPATH")
    assert python_dir, "IVMC_PYTHONPATH names this build's Python package"
    with tempfile.TemporaryDirectory() as tmp:
        s = write(tmp, "pair.toml",
                  PAIR.format(name="py", duration=1.0, race="resolution") + SCRIPTED.replace(
                      "at_s = 1.6", "at_s = 0.6").replace("at_s = 0.7", "at_s = 0.2"))
        code = textwrap.dedent(f"""\
            import ivmc
            assert "host" in ivmc.backends()
            df = ivmc.sweep({s!r}, {{"membership.period_ms": [20, 100]}}, seeds=1, jobs=1,
                            backend="host", set={{"duration_s": 1.2}})
            assert len(df) == 2, df
            assert (df["lost_messages"] == 0).all(), df["lost_messages"]
            assert (df["migrations"] == 2).all(), df["migrations"]
            one = ivmc.run({s!r}, backend="host")
            assert one.attrs["backend"] == "host"
            assert list(one.columns) == list(ivmc.run({s!r}).columns)
            print("ok")
            """)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=300, env=dict(os.environ, PYTHONPATH=python_dir))
        assert r.returncode == 0 and "ok" in r.stdout, r.stderr


MATRIX = """\
name = "matrix"
duration_s = 1.2
[platform]
hosts = 2
[[vm]]
name = "a"
host = 0
ram_mib = 32
[[vm]]
name = "b"
host = 0
ram_mib = 32
[[vm]]
name = "c"
host = 0
ram_mib = 32
[channel]
trust = "list"
trusted = [["a", "b"]]
[[workload]]
kind = "tcp_stream"
from = "a"
to = "b"
message_bytes = 256
rate_per_s = 2000
[[workload]]
kind = "tcp_rr"
from = "b"
to = "a"
message_bytes = 64
[[workload]]
kind = "udp_stream"
from = "c"
to = "a"
message_bytes = 128
rate_per_s = 500
[[workload]]
kind = "tcp_stream"
from = "d"
to = "b"
message_bytes = 512
rate_per_s = 1000
[[event]]
kind = "migrate"
at_s = 0.3
vm = "a"
host = 1
[[event]]
kind = "migrate"
at_s = 0.7
vm = "a"
host = 0
[[event]]
kind = "create"
at_s = 0.2
vm = "d"
host = 0
ram_mib = 32
[[event]]
kind = "shutdown"
at_s = 0.9
vm = "d"
"""


@pytest.mark.parametrize("setting", [
    "channel.notify=polling", "channel.notify=per_packet", "channel.notify=atw",
    "channel.notify=spin_then_block", "membership.race=prevention",
    "membership.detection=static", "membership.detection=adaptive",
    "membership.detection=watch", "membership.detection=sync"])
def test_every_policy_source_and_lifecycle_event_plays_without_loss(setting):
    with tempfile.TemporaryDirectory() as tmp:
        s = write(tmp, "matrix.toml", MATRIX)
        rows = {}
        for backend in ("sim", "host"):
            out = os.path.join(tmp, backend)
            r = run(["run", s, "--backend", backend, "--set", setting, "--out", out, "--quiet"])
            assert r.returncode == 0, r.stderr
            rows[backend], _ = results(out)
        sim, row = rows["sim"], rows["host"]
        assert num(row, "lost_messages") == 0
        assert num(row, "migrations") == 2
        # The trust list: only a and b may share memory; c's and d's pairs stay remote.
        assert num(row, "trust_refusals") == 2 == num(sim, "trust_refusals")
        assert num(row, "w2_local_share") == 0 and num(row, "w3_local_share") == 0
        # a and b share a host 0-0.33 s and from 0.73 s; how soon the link comes back after
        # the return is the membership source's doing (static never, adaptive only at its
        # next, by then long, period): the same on both backends.
        assert abs(num(row, "w0_local_share") - num(sim, "w0_local_share")) < 0.1
        assert num(row, "w1_transactions_per_s") > 0
        # d exists from 0.2 s to 0.9 s only: its stream of 1,000/s ran then, and ended with it.
        assert num(row, "w3_messages_per_s") * 1.2 == pytest.approx(700, abs=20)
        assert num(sim, "w3_messages_per_s") * 1.2 == pytest.approx(700, abs=20)
        if setting == "membership.race=prevention":
            assert num(row, "link_probes") > 0
        if setting == "membership.detection=sync":
            assert num(row, "race_exposure") == 0  # views change inside the migration
        if setting == "channel.notify=polling":
            assert num(row, "data_notifications") == 0
