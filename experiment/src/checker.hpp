// The semantic checks of a scenario (internal): what validate() reports, and what the loader
// adds to the problems it found while reading.
#pragma once

#include "issues.hpp"

#include <vector>

namespace ivmc::experiment::detail {

// Every semantic problem of `s`, at key paths (resolve() places them).
std::vector<Issue> check_scenario(const Scenario& s);

} // namespace ivmc::experiment::detail
