// One simulated run (world.hpp): the world's set-up from the scenario, its run, and
// run_scenario. The endpoints, costs, links, events and metrics are in world_*.cpp.
#include "world.hpp"

#include "ivmc/sim/run.hpp"

#include "ivmc/sim/cost_profile.hpp"

#include "ivmc/experiment/run_progress.hpp"
#include "ivmc/experiment/validate.hpp"

#include <unistd.h>

#include <chrono>
#include <stdexcept>

namespace ivmc::sim {

World::World(const Scenario& s, const RunOptions& options)
    : s_(s), options_(options), model_([&] {
        PlatformSpec spec;
        spec.simgrid_log = options.simgrid_log;
        spec.hosts = s.platform.hosts;
        spec.link_bandwidth = s.platform.link_gbps * 1e9 / 8;
        spec.link_latency = s.platform.link_latency_us * 1e-6;
        spec.migration_speed = s.platform.migration_gbps * 1e9 / 8;
        return spec;
      }()),
      rng_(s.seed) {
  costs_ = load_cost_profile(s.cost_profile).costs; // the default profile when none is named
  costs_.apply(s.costs);
  policy_ = s.channel.notify;
  race_ = s.membership.race;
  warmup_ = ns(s.warmup_s * 1e9);
  end_ = ns(s.duration_s * 1e9);
  host_stage_.resize(s.platform.hosts);
  nic_stage_.resize(s.platform.hosts);
  if (s.pool.enabled) {
    PoolConfig pc;
    pc.pool_bytes = std::uint64_t(s.pool.pool_mib) << 20;
    pc.chunk_bytes = s.pool.chunk_kib << 10;
    pc.policy = s.pool.allocation;
    pc.max_pairs = s.pool.max_pairs;
    for (std::size_t h = 0; h < s.platform.hosts; ++h) {
      pools_.push_back(std::make_unique<SharedPool>(pc));
    }
  }
}

bool World::trusted(VmId a, VmId b) const {
  if (s_.channel.trust != Trust::list) return true;
  for (const auto& [x, y] : s_.channel.trusted) {
    const VmId i = ids_.count(x) ? ids_.at(x) : 0, j = ids_.count(y) ? ids_.at(y) : 0;
    if ((i == a && j == b) || (i == b && j == a)) return true;
  }
  return false;
}

std::uint32_t World::pieces_for(std::size_t bytes) const {
  // A layer-3 channel (below IP) carries IP packets: a message is cut into segments. Layers 1
  // (library) and 2 (socket) carry it whole.
  if (s_.channel.layer != 3) return 1;
  return static_cast<std::uint32_t>(packets(bytes));
}

// ---------------------------------------------------------------------------------------------

RunResult World::run() {
  const auto wall0 = std::chrono::steady_clock::now();
  wstats_.resize(s_.workloads.size());
  setup_events();
  setup_workloads();
  model_.stop_at(s_.duration_s);
  std::unique_ptr<experiment::RunProgress> progress;
  if (options_.progress) {
    progress = std::make_unique<experiment::RunProgress>(
        s_.name, s_.duration_s, isatty(STDERR_FILENO) != 0, options_.progress_every_s);
    model_.on_progress([p = progress.get()](double now_s) { p->update(now_s); });
  }
  model_.run();
  if (progress) progress->finish();
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return collect(wall);
}

namespace {
bool g_ran = false;
}

RunResult run_scenario(const Scenario& scenario, const RunOptions& options) {
  if (const auto issues = experiment::validate(scenario); !issues.empty())
    throw ScenarioError(issues);
  if (g_ran) {
    throw std::logic_error("run_scenario: this process already ran a point (one SimGrid engine "
                           "per process; run each point in its own process)");
  }
  g_ran = true;
  World world(scenario, options);
  return world.run();
}

} // namespace ivmc::sim
