// Checking a scenario before anything runs.
#pragma once

#include "ivmc/experiment/scenario.hpp"

#include <vector>

namespace ivmc::experiment {

// Every semantic problem (unknown VM names, hosts out of range, bad enums, negative times...).
// Empty when the scenario can run.
std::vector<ScenarioIssue> validate(const Scenario& s);

} // namespace ivmc::experiment
