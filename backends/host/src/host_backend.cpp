// The `host` backend (host_backend.hpp): what it refuses, the plan of a run, its results.
#include "ivmc/host/host_backend.hpp"

#include "ivmc/host/board.hpp"
#include "ivmc/host/orchestrator.hpp"
#include "traffic.hpp"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

namespace ivmc::host {

namespace {

Nanos ns(double v) {
  return static_cast<Nanos>(std::llround(v));
}

// Seeded, portable draws for the generators (the standard distributions are
// implementation-defined, the engine is not).
class Draws {
public:
  explicit Draws(std::uint64_t seed) : engine_(seed) {}
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double exponential(double rate) { return -std::log1p(-uniform()) / rate; }
  std::size_t below(std::size_t n) {
    return static_cast<std::size_t>(uniform() * static_cast<double>(n));
  }

private:
  std::mt19937_64 engine_;
};

std::string at_line(const sim::Scenario& s, std::size_t line) {
  return line ? fmt::format("{}:{}", s.origin, line) : s.origin;
}

bool trusted(const sim::Scenario& s, const std::string& a, const std::string& b) {
  if (s.channel.trust != "list") return true;
  for (const auto& [x, y] : s.channel.trusted) {
    if ((x == a && y == b) || (x == b && y == a)) return true;
  }
  return false;
}

} // namespace

std::uint64_t largest_ring(const sim::Scenario& s) {
  if (!s.pool.enabled) return std::uint64_t{s.channel.ring_kib} << 10;
  const std::uint64_t pool = std::uint64_t{s.pool.pool_mib} << 20;
  const std::uint64_t most = s.pool.allocation == "proportional"
                                 ? pool
                                 : pool / std::max<std::uint32_t>(s.pool.max_pairs, 1);
  return std::min<std::uint64_t>(SharedPool::floor_pow2(most), 1u << 30);
}

std::vector<sim::ScenarioIssue> check(const sim::Scenario& s) {
  std::vector<sim::ScenarioIssue> out;
  auto refuse = [&](std::string where, std::string what) {
    out.push_back({std::move(where), fmt::format("{} (the host backend cannot play it)", what)});
  };
  std::set<std::string> names;
  for (const auto& v : s.vms) names.insert(v.name);
  for (const auto& e : s.events) names.insert(e.vm);
  if (names.size() > Board::kMaxVms) {
    refuse(s.origin, fmt::format("vm: {} VMs; at most {} processes", names.size(), Board::kMaxVms));
  }
  if (s.membership.detection == "group") {
    refuse(s.origin, "membership.detection: \"group\" (IVC's registration) is not played on real "
                     "processes yet; use static, periodic, adaptive, watch or sync");
  }
  for (std::size_t i = 0; i < s.workloads.size(); ++i) {
    const auto& w = s.workloads[i];
    if (w.message_bytes < kMessageHeader) {
      refuse(at_line(s, w.line),
             fmt::format("workload[{}].message_bytes: {} B; every message carries a {}-byte "
                         "check header here, so at least {}",
                         i, w.message_bytes, kMessageHeader, kMessageHeader));
    }
    if (w.message_bytes > (64u << 20)) {
      refuse(at_line(s, w.line), fmt::format("workload[{}].message_bytes: over 64 MiB", i));
    }
  }
  std::size_t pipes = 0;
  for (const auto& w : s.workloads) pipes += (w.kind == "tcp_rr" || w.kind == "udp_rr") ? 2 : 1;
  const std::uint64_t ring = largest_ring(s);
  const std::size_t slot =
      Channel::area_bytes(static_cast<std::uint32_t>(ring), static_cast<std::uint32_t>(ring));
  if (static_cast<double>(pipes) * 4 * static_cast<double>(slot) > double(1u << 30)) {
    refuse(s.origin,
           fmt::format("{}: {} KiB rings for {} pipes need over 1 GiB of shared "
                       "memory per host",
                       s.pool.enabled ? "pool.pool_mib" : "channel.ring_kib", ring >> 10, pipes));
  }
  return out;
}

Plan plan_from(const sim::Scenario& s, std::uint64_t seed, bool progress) {
  Plan p;
  p.name = s.name;
  p.hosts = s.platform.hosts;
  p.seed = seed;
  p.progress = progress;
  p.duration_s = s.duration_s;
  p.warmup_s = s.warmup_s;
  p.percentiles = s.latency_percentiles;
  p.migration_gbps = s.platform.migration_gbps;
  std::map<std::string, VmId> ids;
  std::map<VmId, std::size_t> ram;
  for (const auto& v : s.vms) {
    p.vms.push_back({v.name, static_cast<HostId>(v.host), v.ram_mib});
    ids[v.name] = static_cast<VmId>(p.vms.size());
  }
  for (const auto& e : s.events) { // VMs created by events get ids too, in order
    if (e.kind == "create" && !ids.count(e.vm)) {
      p.vms.push_back({e.vm, std::nullopt, e.ram_mib});
      ids[e.vm] = static_cast<VmId>(p.vms.size());
    }
  }
  // The channel and the link, as the simulator configures them.
  p.channel.ring_bytes = s.channel.ring_kib * 1024;
  if (!parse_notify_policy(s.channel.notify, p.channel.notify.policy)) {
    throw std::invalid_argument("channel.notify");
  }
  p.channel.notify.atw_batch = s.channel.atw_batch;
  p.channel.notify.atw_window = std::max<Nanos>(ns(s.channel.atw_window_us * 1e3), 1);
  p.channel.notify.spin_budget = ns(s.channel.spin_budget_us * 1e3);
  if (!parse_race_policy(s.membership.race, p.link.race)) {
    throw std::invalid_argument("membership.race");
  }
  p.link.stale_timeout = ns(s.membership.stale_timeout_us * 1e3);
  if (s.pool.enabled) {
    p.pool.enabled = true;
    p.pool.config.pool_bytes = std::uint64_t(s.pool.pool_mib) << 20;
    p.pool.config.chunk_bytes = s.pool.chunk_kib << 10;
    p.pool.config.policy = *parse_pool_policy(s.pool.allocation);
    p.pool.config.max_pairs = s.pool.max_pairs;
    p.pool.rebalance = std::max<Nanos>(ns(s.pool.rebalance_ms * 1e6), 1000);
    p.channel.ring_bytes = static_cast<std::uint32_t>(largest_ring(s)); // the slots' size
  }
  p.membership = s.membership.detection;
  MembershipParams& mp = p.membership_params;
  mp.period = std::max<Nanos>(ns(s.membership.period_ms * 1e6), 1);
  mp.phase = ns(s.membership.phase_ms * 1e6);
  mp.propagation_delay = ns(s.membership.propagation_delay_us * 1e3);
  mp.period_min = ns(s.membership.period_min_ms * 1e6);
  mp.period_max = ns(s.membership.period_max_ms * 1e6);
  mp.watch_delay = ns(s.membership.watch_delay_us * 1e3);
  for (const auto& w : s.workloads) {
    WorkPlan wp;
    wp.kind = (w.kind == "tcp_rr" || w.kind == "udp_rr") ? WorkPlan::Kind::request_response
                                                         : WorkPlan::Kind::stream;
    wp.from = ids.at(w.from);
    wp.to = ids.at(w.to);
    wp.bytes = static_cast<std::uint32_t>(w.message_bytes);
    wp.rate_per_s = w.rate_per_s;
    wp.poisson = w.arrivals == "poisson";
    wp.datagram = w.kind == "udp_stream" || w.kind == "udp_rr";
    wp.reestablish = s.channel.migration;
    wp.start_s = w.start_s;
    wp.stop_s = w.stop_s < 0 ? s.duration_s : std::min(w.stop_s, s.duration_s);
    const bool trust = trusted(s, w.from, w.to);
    // Without migration support the channel is only for VMs co-resident at start.
    const auto& a = p.vms[wp.from - 1];
    const auto& b = p.vms[wp.to - 1];
    const bool together_at_start = a.host && b.host && *a.host == *b.host;
    wp.local_allowed = s.channel.enabled && trust && (s.channel.migration || together_at_start);
    wp.trust_refused = s.channel.enabled && !trust;
    p.works.push_back(wp);
  }
  for (const auto& e : s.events) {
    EventPlan ep;
    ep.at_s = e.at_s;
    ep.vm = ids.at(e.vm);
    ep.host = static_cast<HostId>(e.host);
    ep.kind = e.kind == "migrate"  ? EventPlan::Kind::migrate
              : e.kind == "create" ? EventPlan::Kind::create
                                   : EventPlan::Kind::shutdown;
    p.events.push_back(ep);
  }
  // Poisson generators, drawn up front from the run's seed as the simulator draws them.
  Draws draws(seed);
  for (const auto& g : s.generators) {
    std::vector<VmId> candidates;
    for (const auto& name : g.vms) candidates.push_back(ids.at(name));
    if (candidates.empty()) {
      for (VmId id = 1; id <= p.vms.size(); ++id) candidates.push_back(id);
    }
    const double stop = g.stop_s < 0 ? s.duration_s : std::min(g.stop_s, s.duration_s);
    for (double t = g.start_s + draws.exponential(g.rate_per_s); t < stop;
         t += draws.exponential(g.rate_per_s)) {
      EventPlan ep;
      ep.at_s = t;
      ep.vm = candidates[draws.below(candidates.size())];
      if (g.kind == "migrate") {
        ep.kind = EventPlan::Kind::migrate;
        ep.other = draws.below(p.hosts - 1);
      } else if (g.kind == "shutdown") {
        ep.kind = EventPlan::Kind::shutdown;
      } else {
        ep.kind = EventPlan::Kind::create;
        ep.host = static_cast<HostId>(draws.below(p.hosts));
      }
      p.events.push_back(ep);
    }
  }
  return p;
}

sim::RunResult run_on_host(const sim::Scenario& s, std::uint64_t seed, bool progress) {
  if (const auto issues = check(s); !issues.empty()) throw sim::ScenarioError(issues);
  const Outcome o = play(plan_from(s, seed, progress));
  sim::RunResult r;
  std::set<std::string> used;
  for (const std::string& name : sim::metric_names(s)) {
    const auto it = o.metrics.find(name);
    r.metrics.push_back({name, it == o.metrics.end() ? std::nan("") : it->second});
    used.insert(name);
  }
  for (const auto& [name, v] : o.metrics) {
    if (!used.count(name)) throw std::logic_error("host: metric " + name + " is not in the schema");
  }
  r.events = o.events;
  r.wall_s = o.wall_s;
  r.summary = o.summary;
  return r;
}

} // namespace ivmc::host
