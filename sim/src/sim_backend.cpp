// See sim_backend.hpp.
#include "ivmc/sim/sim_backend.hpp"

#include "ivmc/sim/run.hpp"

#include "ivmc/sim/cost_profile.hpp"

#include <stdexcept>

#include <thread>

namespace ivmc::sim {

// The cost profile and the [costs] names: a profile file's problems at its own file:line.
std::vector<experiment::ScenarioIssue> SimBackend::check(const experiment::Scenario& s) const {
  std::vector<experiment::ScenarioIssue> out;
  CostModel costs;
  try {
    costs = load_cost_profile(s.cost_profile).costs;
  } catch (const ProfileError& e) {
    for (const auto& p : e.problems()) {
      if (p.starts_with("costs.profile: ")) {
        out.push_back(experiment::issue_at(s, "costs.profile", p));
        continue;
      }
      const auto sep = p.find(": ");
      if (sep == std::string::npos)
        out.push_back({s.cost_profile, p});
      else
        out.push_back({p.substr(0, sep), p.substr(sep + 2)});
    }
  }
  for (const auto& [name, v] : s.costs) {
    try {
      costs.set(name, v);
    } catch (const std::invalid_argument& e) {
      out.push_back(experiment::issue_at(s, "costs." + name, e.what()));
    }
  }
  return out;
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
