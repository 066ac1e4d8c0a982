// One simulated run of a scenario in this process (the simulator's half of SimBackend::run).
#pragma once

#include "ivmc/experiment/results.hpp"
#include "ivmc/experiment/scenario.hpp"

#include <string>

namespace ivmc::sim {

// How a run talks to the outside (none of it changes the results).
struct RunOptions {
  // SimGrid's own log lines (its XBT messages, such as "sleep_for() is smaller than the SimGrid
  // numerical accuracy") are appended to this file; "": only its critical ones, on stderr.
  std::string simgrid_log;
  // Progress on stderr (experiment::RunProgress): in place on a terminal, else a line every
  // progress_every_s seconds.
  bool progress = false;
  double progress_every_s = 5;
};

// Runs one point in this process. A process can run one point only (one SimGrid engine per
// process); a second call throws std::logic_error. Throws ScenarioError on an invalid scenario.
// Its metrics are exactly experiment::metric_names(scenario) (checked: std::logic_error).
experiment::RunResult run_scenario(const experiment::Scenario& scenario,
                                   const RunOptions& options = {});

} // namespace ivmc::sim
