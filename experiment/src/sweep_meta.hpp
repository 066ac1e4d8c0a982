// A sweep's meta.json (internal; docs/results.md): what was asked, how far it got, what failed,
// and the base scenario, rewritten whole (a temporary file renamed over it) at the start and
// the end of every sweep.
#pragma once

#include "sweep_plan.hpp"

#include "ivmc/experiment/scenario.hpp"
#include "ivmc/experiment/sweep.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ivmc::experiment::detail {

struct Failure {
  std::size_t point = 0;
  std::uint64_t seed = 0;
  std::string what;
};

struct Meta {
  const Scenario* base = nullptr;
  const SweepOptions* options = nullptr;
  const CrossProduct* points = nullptr;
  std::string_view backend;
  std::string fingerprint; // Fingerprint::digest() of base, backend and version
  unsigned jobs = 1;
  std::string started;
  std::chrono::steady_clock::time_point t0;
  std::string state = "running";
  std::size_t total = 0, done = 0, skipped = 0, made = 0;
  std::vector<Failure> failed;
  std::vector<Failure> refused; // runs the backend refused for their seed (`what`: the issues)
};

// The time now in UTC, ISO 8601 ("2026-12-06T10:00:00Z").
std::string utc_now();

void write_meta(const std::string& dir, const Meta& m);

} // namespace ivmc::experiment::detail
