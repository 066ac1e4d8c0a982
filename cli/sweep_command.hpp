// `ivmc sweep`: a scenario over the cross product of parameter values, each point for several
// seeds, on a backend (simulated by default), in child processes, resumable (docs/results.md).
#pragma once

#include "backend_options.hpp"

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ivmc::cli {

struct SweepArgs {
  std::string scenario;            // a file, "default" or "preset:NAME"
  std::vector<std::string> params; // "key=v1,v2,..."
  std::vector<std::string> sets;   // "key=value", applied to the scenario first
  std::uint32_t seeds = 1;
  std::optional<std::uint64_t> first_seed; // default: the scenario's seed
  unsigned jobs = 0; // 0: the backend's default (sim: one per CPU; the real backends: 1)
  std::string out;
  bool force = false; // start over in an --out another scenario, backend or version made
  BackendArgs backend;
};

CLI::App* add_sweep(CLI::App& app, SweepArgs& args); // the `sweep` subcommand
int sweep_main(const SweepArgs& args);               // the exit status

} // namespace ivmc::cli
