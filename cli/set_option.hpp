// `--set KEY=VALUE ...`, as `ivmc run`, `ivmc sweep` and `ivmc validate` take it: one or several
// pairs after each --set, applied in order.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace ivmc::cli {

// Adds --set to `cmd`, filling `sets`. After parsing, a last value without '=' (the scenario
// written after the pairs: `ivmc run --set a=1 b=2 race.toml`) moves to `scenario` when no
// scenario was given before the pairs; with `scenario_required`, none at all is an error.
void add_set_option(CLI::App& cmd, std::vector<std::string>& sets, std::string& scenario,
                    bool scenario_required);

} // namespace ivmc::cli
