// The simulator as a backend (experiment/backend.hpp): every scenario the loader accepts runs
// here, in simulated time on the SimGrid model (run.hpp). `ivmc run` and `ivmc sweep` default
// to it.
#pragma once

#include "ivmc/experiment/backend.hpp"

#include <memory>

namespace ivmc::sim {

class SimBackend final : public experiment::Backend {
public:
  std::string_view name() const override { return "sim"; }
  // Nothing beyond validate(): the simulator plays every key.
  std::vector<experiment::ScenarioIssue> check(const experiment::Scenario& s) const override;
  // run_scenario with `seed`: one per process (a sweep or Python runs each in a child).
  experiment::RunResult run(const experiment::Scenario& s, std::uint64_t seed) override;
  // The CPU count: simulated runs share the machine without disturbing each other's results.
  unsigned default_jobs() const override;
};

// The backends table's factory (backends/table).
std::unique_ptr<experiment::Backend> make_sim_backend(const experiment::BackendSettings& settings);

} // namespace ivmc::sim
