// The `host` backend: a scenario played on this machine's real CPUs (orchestrator.hpp), behind
// the experiment layer's Backend interface.
#pragma once

#include "ivmc/host/plan.hpp"
#include "ivmc/sim/run.hpp"
#include "ivmc/sim/scenario.hpp"

#include <cstdint>
#include <vector>

namespace ivmc::host {

// The largest ring a channel of `s` can have (its pool's largest share, or channel.ring_kib).
std::uint64_t largest_ring(const sim::Scenario& s);
// Everything in `s` this backend cannot play, each naming its key.
std::vector<sim::ScenarioIssue> check(const sim::Scenario& s);
// The plan of one run of `s` with `seed` (generators drawn from it). Call check() first.
Plan plan_from(const sim::Scenario& s, std::uint64_t seed, bool progress);
// One run, into the simulator's results schema (metric_names(s)); NaN where nothing measured it.
sim::RunResult run_on_host(const sim::Scenario& s, std::uint64_t seed, bool progress);

} // namespace ivmc::host
