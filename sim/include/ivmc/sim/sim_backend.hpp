// The simulator as a backend (experiment/backend.hpp): every scenario the loader accepts runs
// here, in simulated time on the SimGrid model (run.hpp). `ivmc run` and `ivmc sweep` default
// to it.
#pragma once

#include "ivmc/experiment/backend.hpp"

#include <memory>
#include <string>

namespace ivmc::sim {

class SimBackend final : public experiment::Backend {
public:
  SimBackend() = default;
  // With settings.out_dir, SimGrid's log goes to out_dir/simgrid.log (else only its critical
  // lines, on stderr); settings.progress shows a long run's progress (run.hpp RunOptions).
  explicit SimBackend(const experiment::BackendSettings& settings) : settings_(settings) {}
  std::string_view name() const override { return "sim"; }
  // The simulator plays every key; this checks the cost profile (costs.profile, its file's
  // problems at their lines) and the [costs] names and values.
  std::vector<experiment::ScenarioIssue> check(const experiment::Scenario& s) const override;
  // run_scenario with `seed`: one per process (a sweep or Python runs each in a child).
  experiment::RunResult run(const experiment::Scenario& s, std::uint64_t seed) override;
  // The CPU count: simulated runs share the machine without disturbing each other's results.
  unsigned default_jobs() const override;

private:
  experiment::BackendSettings settings_;
};

// The backends table's factory (backends/table).
std::unique_ptr<experiment::Backend> make_sim_backend(const experiment::BackendSettings& settings);

} // namespace ivmc::sim
