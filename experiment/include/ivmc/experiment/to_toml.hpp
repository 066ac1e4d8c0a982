// Writing a scenario back as TOML.
#pragma once

#include "ivmc/experiment/scenario.hpp"

#include <string>

namespace ivmc::experiment {

// The scenario as TOML that parse_scenario reads back to an equal scenario (meta.json, docs).
std::string to_toml(const Scenario& s);

} // namespace ivmc::experiment
