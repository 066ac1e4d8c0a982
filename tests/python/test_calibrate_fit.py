"""The calibrator's fit (analysis/calibrate.py) recovers known parameters: synthetic
"measurements" are made by the simulator itself from known cost parameters, the fit starts from
values off by 1.5-3x, and must come back to within 5 % of the known ones.

Run: IVMC_BIN=build/release/cli/ivmc /usr/bin/python3 -m pytest -q tests/python/test_calibrate_fit.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IVMC = Path(os.environ.get("IVMC_BIN", ROOT / "build" / "release" / "cli" / "ivmc")).resolve()
sys.path.insert(0, str(ROOT / "analysis"))

import calibrate as cal  # noqa: E402

if not IVMC.is_file():
    pytest.skip(f"no ivmc binary at {IVMC} (set IVMC_BIN)", allow_module_level=True)
pytest.importorskip("scipy")

KNOWN = {
    "shm_per_record_ns": 400.0,
    "shm_copy_ns_per_byte": 0.3,
    "shm_poll_detect_ns": 250.0,
    "wakeup_latency_ns": 20000.0,
    "loopback_latency_ns": 30000.0,
}
FIXED = {"remote_loopback": 1, "shm_doorbell_ns": 1000, "irq_ns": 1500, "syscall_ns": 800,
         "copy_ns_per_byte": 0.2, "tcp_per_packet_ns": 1000}


def cases():
    return [
        cal._c("tcp_stream", 64, "polling", "mbps"),
        cal._c("tcp_stream", 64 * 1024, "polling", "mbps"),
        cal._c("tcp_rr", 64, "polling", "tps"),
        cal._c("tcp_rr", 64, "on_demand", "tps"),
        cal._c("tcp_rr", 16 * 1024, "on_demand", "tps"),
        cal._c("tcp_rr", 64, "remote", "tps"),
    ]


def test_fit_recovers_known_parameters(tmp_path):
    sim = cal.Simulator(IVMC, cases(), tmp_path)
    measured = sim.predict(cal._sets(KNOWN, FIXED))
    assert all(v > 0 for v in measured.values())
    start = {"shm_per_record_ns": 150.0, "shm_copy_ns_per_byte": 0.1, "shm_poll_detect_ns": 600.0,
             "wakeup_latency_ns": 8000.0, "loopback_latency_ns": 90000.0}
    params = {k: (start[k], 1.0, 1e6) for k in KNOWN}
    params["shm_copy_ns_per_byte"] = (0.1, 1e-3, 10.0)
    fitted, model = cal.fit(sim, measured, params, FIXED, max_nfev=30)
    for k, v in KNOWN.items():
        assert fitted[k] == pytest.approx(v, rel=0.05), (k, fitted)
    for name, m in measured.items():
        assert model[name] == pytest.approx(m, rel=0.02), name
