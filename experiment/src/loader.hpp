// What the overrides need of the loader (internal).
#pragma once

#include "ivmc/experiment/scenario.hpp"

#include <string>
#include <vector>

namespace ivmc::experiment::detail {

// Applies preset `name`'s tables over `s` as `preset = "name"` in a file would; returns the
// preset's own problems (an unknown name, a broken preset), without validating `s`.
std::vector<ScenarioIssue> apply_preset_over(Scenario& s, const std::string& name);

} // namespace ivmc::experiment::detail
