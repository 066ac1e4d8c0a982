// The `host` backend (host_backend.hpp): what it refuses, the plan of a run, its results.
#include "ivmc/host/host_backend.hpp"

#include "ivmc/experiment/draws.hpp"
#include "ivmc/experiment/membership.hpp"
#include "ivmc/experiment/results.hpp"

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

bool is_rr(experiment::WorkloadKind k) {
  return k == experiment::WorkloadKind::tcp_rr || k == experiment::WorkloadKind::udp_rr;
}

EventPlan::Kind event_kind(experiment::EventKind k) {
  switch (k) {
  case experiment::EventKind::migrate:
    return EventPlan::Kind::migrate;
  case experiment::EventKind::create:
    return EventPlan::Kind::create;
  case experiment::EventKind::shutdown:
    return EventPlan::Kind::shutdown;
  }
  return EventPlan::Kind::migrate;
}

bool trusted(const experiment::Scenario& s, const std::string& a, const std::string& b) {
  if (s.channel.trust != experiment::Trust::list) return true;
  for (const auto& [x, y] : s.channel.trusted) {
    if ((x == a && y == b) || (x == b && y == a)) return true;
  }
  return false;
}

} // namespace

std::uint64_t largest_ring(const experiment::Scenario& s) {
  if (!s.pool.enabled) return std::uint64_t{s.channel.ring_kib} << 10;
  const std::uint64_t pool = std::uint64_t{s.pool.pool_mib} << 20;
  const std::uint64_t most = s.pool.allocation == PoolPolicy::proportional
                                 ? pool
                                 : pool / std::max<std::uint32_t>(s.pool.max_pairs, 1);
  return std::min<std::uint64_t>(SharedPool::floor_pow2(most), 1u << 30);
}

std::vector<experiment::ScenarioIssue> HostBackend::check(const experiment::Scenario& s) const {
  std::vector<experiment::ScenarioIssue> out;
  auto refuse = [&](const std::string& key, std::string what) {
    out.push_back(
        experiment::issue_at(s, key, fmt::format("{} (the host backend cannot play it)", what)));
  };
  std::set<std::string> names;
  for (const auto& v : s.vms) names.insert(v.name);
  for (const auto& e : s.events) names.insert(e.vm);
  if (names.size() > Board::kMaxVms) {
    refuse(fmt::format("vm[{}]", s.vms.size() - 1),
           fmt::format("{} VMs; at most {} processes", names.size(), Board::kMaxVms));
  }
  for (auto& issue : experiment::unrecorded_changes(s, "host")) out.push_back(std::move(issue));
  if (s.membership.detection == experiment::Detection::group) {
    refuse("membership.detection", "\"group\" (IVC's registration) is not played on real "
                                   "processes yet; use static, periodic, adaptive, watch or sync");
  }
  for (std::size_t i = 0; i < s.workloads.size(); ++i) {
    const auto& w = s.workloads[i];
    if (w.message_bytes < kMessageHeader) {
      refuse(fmt::format("workload[{}].message_bytes", i),
             fmt::format("{} B; every message carries a {}-byte check header here, so at least {}",
                         w.message_bytes, kMessageHeader, kMessageHeader));
    }
    if (w.message_bytes > (64u << 20)) {
      refuse(fmt::format("workload[{}].message_bytes", i), "over 64 MiB");
    }
  }
  std::size_t pipes = 0;
  for (const auto& w : s.workloads) pipes += is_rr(w.kind) ? 2 : 1;
  const std::uint64_t ring = largest_ring(s);
  const std::size_t slot =
      Channel::area_bytes(static_cast<std::uint32_t>(ring), static_cast<std::uint32_t>(ring));
  if (static_cast<double>(pipes) * 4 * static_cast<double>(slot) > double(1u << 30)) {
    refuse(s.pool.enabled ? "pool.pool_mib" : "channel.ring_kib",
           fmt::format("{} KiB rings for {} pipes need over 1 GiB of shared memory per host",
                       ring >> 10, pipes));
  }
  return out;
}

Plan plan_from(const experiment::Scenario& s, std::uint64_t seed, bool progress) {
  Plan p;
  p.name = s.name;
  p.hosts = s.platform.hosts;
  p.seed = seed;
  p.progress = progress;
  p.duration_s = s.duration_s;
  p.warmup_s = s.warmup_s;
  p.percentiles = s.latency_percentiles;
  p.migration_gbps = s.platform.migration_gbps;
  const std::map<std::string, VmId> ids = experiment::vm_ids(s); // as every backend numbers them
  p.vms.resize(ids.size());
  for (const auto& v : s.vms) p.vms[ids.at(v.name) - 1] = {v.name, v.host, v.ram_mib};
  for (const auto& e : s.events) { // VMs created by events: on no host until then
    if (e.kind == experiment::EventKind::create && p.vms[ids.at(e.vm) - 1].name.empty()) {
      p.vms[ids.at(e.vm) - 1] = {e.vm, std::nullopt, e.ram_mib};
    }
  }
  // The channel and the link, as the simulator configures them.
  p.channel.ring_bytes = s.channel.ring_kib * 1024;
  p.channel.notify.policy = s.channel.notify;
  p.channel.notify.atw_batch = s.channel.atw_batch;
  p.channel.notify.atw_window = std::max<Nanos>(ns(s.channel.atw_window_us * 1e3), 1);
  p.channel.notify.spin_budget = ns(s.channel.spin_budget_us * 1e3);
  p.link.race = s.membership.race;
  p.link.stale_timeout = ns(s.membership.stale_timeout_us * 1e3);
  if (s.pool.enabled) {
    p.pool.enabled = true;
    p.pool.config.pool_bytes = std::uint64_t(s.pool.pool_mib) << 20;
    p.pool.config.chunk_bytes = s.pool.chunk_kib << 10;
    p.pool.config.policy = s.pool.allocation;
    p.pool.config.max_pairs = s.pool.max_pairs;
    p.pool.rebalance = std::max<Nanos>(ns(s.pool.rebalance_ms * 1e6), 1000);
    p.channel.ring_bytes = static_cast<std::uint32_t>(largest_ring(s)); // the slots' size
  }
  if (s.channel.trust == experiment::Trust::list) { // every host's server enforces it
    p.trusted.emplace();
    for (const auto& [x, y] : s.channel.trusted) {
      if (ids.contains(x) && ids.contains(y)) p.trusted->emplace_back(ids.at(x), ids.at(y));
    }
  }
  p.membership = std::string(experiment::to_string(s.membership.detection));
  p.membership_params = experiment::membership_params(s, ids);
  for (const auto& w : s.workloads) {
    WorkPlan wp;
    wp.kind = is_rr(w.kind) ? WorkPlan::Kind::request_response : WorkPlan::Kind::stream;
    wp.from = ids.at(w.from);
    wp.to = ids.at(w.to);
    wp.bytes = static_cast<std::uint32_t>(w.message_bytes);
    wp.rate_per_s = w.rate_per_s;
    wp.poisson = w.arrivals == experiment::Arrivals::poisson;
    wp.datagram = w.kind == experiment::WorkloadKind::udp_stream ||
                  w.kind == experiment::WorkloadKind::udp_rr;
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
    ep.kind = event_kind(e.kind);
    p.events.push_back(ep);
  }
  // Poisson generators: drawn up front from the run's seed, as every backend draws them.
  experiment::Draws draws(seed);
  for (const experiment::DrawnEvent& d : experiment::draw_generators(s, ids, draws)) {
    EventPlan ep;
    ep.at_s = d.at_s;
    ep.vm = d.vm;
    ep.kind = event_kind(d.kind);
    ep.other = d.other;
    if (d.kind == experiment::EventKind::create) ep.host = d.host;
    p.events.push_back(ep);
  }
  return p;
}

experiment::RunResult HostBackend::run(const experiment::Scenario& s, std::uint64_t seed) {
  if (const auto issues = experiment::issues_on(*this, s); !issues.empty()) {
    throw experiment::ScenarioError(issues);
  }
  const Outcome o = play(plan_from(s, seed, progress_));
  experiment::RunResult r;
  r.metrics = experiment::schema_metrics(s, o.metrics); // NaN where nothing measured it
  r.events = o.events;
  r.wall_s = o.wall_s;
  r.summary = o.summary;
  return r;
}

std::unique_ptr<experiment::Backend>
make_host_backend(const experiment::BackendSettings& settings) {
  return std::make_unique<HostBackend>(settings.progress);
}

} // namespace ivmc::host
