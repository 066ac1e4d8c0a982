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
  RunOptions o;
  if (!settings_.out_dir.empty()) o.simgrid_log = settings_.out_dir + "/simgrid.log";
  o.progress = settings_.progress;
  o.progress_every_s = settings_.progress_every_s;
  return run_scenario(point, o);
}

unsigned SimBackend::default_jobs() const {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

std::unique_ptr<experiment::Backend> make_sim_backend(const experiment::BackendSettings& settings) {
  return std::make_unique<SimBackend>(settings);
}

} // namespace ivmc::sim
