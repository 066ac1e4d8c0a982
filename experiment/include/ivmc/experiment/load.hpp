// Loading a scenario: TOML text or a file, or a command-line argument (a file, the default
// scenario, a preset).
#pragma once

#include "ivmc/experiment/scenario.hpp"

#include <string>
#include <string_view>

namespace ivmc::experiment {

// Parses TOML text and validates the result; throws ScenarioError with every problem (syntax,
// types, unknown keys, and validate's), each at its line. `origin` names it in messages (a
// path, or "preset:xenloop"). Unknown keys are errors (a typo must not silently run the
// default). Presets: a top-level `preset = "name"` starts from that preset and the file's keys
// override it (its arrays of tables replace the preset's).
Scenario parse_scenario(std::string_view toml_text, const std::string& origin);
Scenario load_scenario(const std::string& path); // reads the file, then parse_scenario
// A scenario argument as the command line takes it: "" or "default" is the embedded default
// scenario; "preset:NAME" is the default with preset NAME applied over it; anything else is a
// file path (load_scenario). Throws ScenarioError (a missing file names the path).
Scenario load_scenario_argument(const std::string& arg);

} // namespace ivmc::experiment
