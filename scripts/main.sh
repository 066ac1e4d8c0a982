#!/usr/bin/env bash
# The main job from a fresh clone: install missing Debian packages, build, and run `ivmc` on its
# embedded default (today: the benchmark). Extra arguments go to `ivmc`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake --preset release >/dev/null
cmake --build --preset release --target ivmc -j"$(nproc)"
exec build/release/cli/ivmc "$@"
