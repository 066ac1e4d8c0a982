// The `host` backend: a scenario played on this machine's real CPUs (orchestrator.hpp), behind
// the experiment layer's Backend interface (backends/host/README.md).
#pragma once

#include "ivmc/experiment/backend.hpp"
#include "ivmc/host/plan.hpp"

#include <cstdint>
#include <memory>
#include <vector>

namespace ivmc::host {

class HostBackend final : public experiment::Backend {
public:
  explicit HostBackend(bool progress) : progress_(progress) {}
  std::string_view name() const override { return "host"; }
  // What this machine cannot play, each at the line that set its key.
  std::vector<experiment::ScenarioIssue> check(const experiment::Scenario& s) const override;
  // One run, into the results schema (metric_names(s)); NaN where nothing measured it.
  experiment::RunResult run(const experiment::Scenario& s, std::uint64_t seed) override;
  // 1: a run times this machine's CPUs; two at once would disturb each other.
  unsigned default_jobs() const override { return 1; }

private:
  bool progress_;
};

// The backends table's factory (backends/table).
std::unique_ptr<experiment::Backend> make_host_backend(const experiment::BackendSettings& settings);

// The largest ring a channel of `s` can have (its pool's largest share, or channel.ring_kib).
std::uint64_t largest_ring(const experiment::Scenario& s);
// The plan of one run of `s` with `seed` (generators drawn from it). `s` must pass check().
Plan plan_from(const experiment::Scenario& s, std::uint64_t seed, bool progress);

} // namespace ivmc::host
