// `ivmc run`: one scenario point on a backend (the simulator by default) in this process, a
// summary for people, results for programs.
#pragma once

#include "backend_options.hpp"

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ivmc::cli {

struct RunOptions {
  std::string scenario = "default"; // a file, `default` or `preset:NAME`
  std::string out;                  // results.csv and meta.json go here (optional)
  std::optional<std::uint64_t> seed;
  std::vector<std::string> sets; // KEY=VALUE overrides, in order
  bool quiet = false;
  double progress_every_s = 5; // progress lines on stderr when it is not a terminal
  bool force = false; // with --out: start over instead of refusing another scenario's results
  BackendArgs backend;
};

CLI::App* add_run(CLI::App& app, RunOptions& o);
int run_run(const RunOptions& o);

} // namespace ivmc::cli
