// The embedded scenarios (presets.hpp): the generated table (experiment/CMakeLists.txt) and the
// [preset] metadata of each preset.
#include "ivmc/experiment/presets.hpp"

#include "embedded_scenarios.hpp"
#include "issues.hpp"

#include <toml++/toml.h>

namespace ivmc::experiment::detail {

std::string preset_names() {
  std::vector<std::string> names;
  for (const auto& f : embedded::presets()) names.emplace_back(f.name);
  return names.empty() ? "there are none" : "the presets are " + join(names);
}

} // namespace ivmc::experiment::detail

namespace ivmc::experiment {

std::vector<PresetInfo> presets() {
  std::vector<PresetInfo> out;
  for (const auto& f : embedded::presets()) {
    PresetInfo info{std::string(f.name), "", ""};
    try {
      const auto doc = toml::parse(f.text, "preset:" + info.name);
      info.system = doc["preset"]["system"].value_or(std::string());
      info.summary = doc["preset"]["summary"].value_or(std::string());
    } catch (const toml::parse_error& e) {
      info.summary = "(invalid TOML: " + std::string(e.description()) + ")";
    }
    out.push_back(std::move(info));
  }
  return out;
}

std::optional<std::string> preset_text(std::string_view name) {
  for (const auto& f : embedded::presets())
    if (f.name == name) return std::string(f.text);
  return std::nullopt;
}

std::string default_scenario_text() {
  return std::string(embedded::default_scenario());
}

} // namespace ivmc::experiment
