// See sim_backend.hpp.
#include "ivmc/sim/sim_backend.hpp"

#include "ivmc/sim/run.hpp"

#include <thread>

namespace ivmc::sim {

std::vector<experiment::ScenarioIssue> SimBackend::check(const experiment::Scenario&) const {
  return {};
}

experiment::RunResult SimBackend::run(const experiment::Scenario& s, std::uint64_t seed) {
  experiment::Scenario point = s;
  point.seed = seed;
  return run_scenario(point);
}

unsigned SimBackend::default_jobs() const {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

std::unique_ptr<experiment::Backend> make_sim_backend(const experiment::BackendSettings&) {
  return std::make_unique<SimBackend>();
}

} // namespace ivmc::sim
