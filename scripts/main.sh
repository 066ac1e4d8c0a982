#!/usr/bin/env bash
# The main job from a fresh clone: install missing Debian packages, build, and simulate the
# embedded default scenario (`ivmc run`), printing its summary. Arguments replace the default:
# `scripts/main.sh bench`, `scripts/main.sh run preset:xenloop`, `scripts/main.sh sweep ...`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake --preset release >/dev/null
cmake --build --preset release --target ivmc _ivmc -j"$(nproc)"
scripts/python_path.sh # /usr/bin/python3 -c "import ivmc" works from here on
if [ "$#" -eq 0 ]; then
  exec build/release/cli/ivmc run default
fi
exec build/release/cli/ivmc "$@"
