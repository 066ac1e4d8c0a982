// One simulated run of a scenario in this process (the simulator's half of SimBackend::run).
#pragma once

#include "ivmc/experiment/results.hpp"
#include "ivmc/experiment/scenario.hpp"

namespace ivmc::sim {

// Runs one point in this process. A process can run one point only (one SimGrid engine per
// process); a second call throws std::logic_error. Throws ScenarioError on an invalid scenario.
// Its metrics are exactly experiment::metric_names(scenario) (checked: std::logic_error).
experiment::RunResult run_scenario(const experiment::Scenario& scenario);

} // namespace ivmc::sim
