#!/usr/bin/env bash
# Every test from a fresh clone: install missing Debian packages, build, run the ctest suites
# (unit, integration, stress; vm where the machine can run guests), then the fuzz target's
# corpus replay and a bounded search. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)"
scripts/python_path.sh # /usr/bin/python3 -c "import ivmc" works from here on
# One test at a time: the integration and stress tests each use both cores.
ctest --preset release --timeout 900
IVMC_FUZZ_SECONDS="${IVMC_FUZZ_SECONDS:-60}" scripts/fuzz.sh
echo "ivmc: all tests passed"
