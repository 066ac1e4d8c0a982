#!/usr/bin/env bash
# Builds the libFuzzer targets with clang, replays the saved corpus, then searches for a bounded
# time (default 60 s; IVMC_FUZZ_SECONDS overrides). New inputs go to a scratch directory, so the
# checked-in corpus only changes when someone merges on purpose:
#   build/fuzz/tests/fuzz/fuzz_channel -merge=1 tests/fuzz/corpus NEW_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${IVMC_FUZZ_SECONDS:-60}"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j"$(nproc)"
target=build/fuzz/tests/fuzz/fuzz_channel
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
echo "fuzz: replaying $(ls tests/fuzz/corpus | wc -l) saved inputs"
"$target" -runs=0 tests/fuzz/corpus 2>&1 | tail -n 2
echo "fuzz: searching for ${seconds}s"
"$target" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$scratch/" \
  "$scratch" tests/fuzz/corpus 2>&1 | grep -E "^stat::(number_of_executed_units|average_exec)|ERROR|invariant|SUMMARY" || true
if ls "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-* >/dev/null 2>&1; then
  echo "fuzz: FAILED, inputs kept in tests/fuzz/" >&2
  cp "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-* tests/fuzz/ 2>/dev/null || true
  exit 1
fi
echo "fuzz: clean"
