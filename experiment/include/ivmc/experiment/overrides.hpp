// `--set key=value`: changing one key of a scenario, as the command line, sweeps and Python do.
#pragma once

#include "ivmc/experiment/scenario.hpp"

#include <string_view>

namespace ivmc::experiment {

// `key=value` overrides with dotted keys: "channel.notify=atw", "membership.period_ms=50",
// "workload.message_bytes=4096" (every workload), "workload[1].message_bytes=4096" (one),
// "costs.syscall_ns=300", "vm[0].host=1", "preset=xenloop" (that preset's tables over `s`).
// Throws ScenarioError naming the key on an unknown key or a value of the wrong type, leaving
// `s` unchanged; does not validate (call validate after the last override).
void apply_override(Scenario& s, std::string_view assignment);

} // namespace ivmc::experiment
