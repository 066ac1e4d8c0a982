// The scenario files embedded at build time: the default scenario (scenarios/default.toml) and
// the presets (scenarios/presets/*.toml).
#pragma once

#include "ivmc/experiment/scenario.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ivmc::experiment {

// Presets: scenario fragments encoding one surveyed system each (scenarios/presets/*.toml,
// embedded at build time).
struct PresetInfo {
  std::string name;    // "xenloop"
  std::string system;  // "XenLoop"
  std::string summary; // one line: its choices
};
std::vector<PresetInfo> presets();
std::optional<std::string> preset_text(std::string_view name);
// The embedded default scenario (scenarios/default.toml).
std::string default_scenario_text();

} // namespace ivmc::experiment
