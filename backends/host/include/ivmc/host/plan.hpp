// What a host-backend run plays: a scenario reduced to typed values the orchestrator needs
// (host_backend.cpp builds it from an experiment::Scenario, with the Poisson generators drawn
// up front from the run's seed, as the simulator draws them).
#pragma once

#include "ivmc/core/channel.hpp"
#include "ivmc/core/link.hpp"
#include "ivmc/core/membership.hpp"
#include "ivmc/core/membership_sources.hpp"
#include "ivmc/core/pool.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ivmc::host {

struct VmPlan {
  std::string name;
  std::optional<HostId> host; // where it is at start; nothing: created by an event later
  std::size_t ram_mib = 1024;
};

struct WorkPlan {
  enum class Kind : std::uint8_t { stream, request_response } kind = Kind::stream;
  VmId from = 0, to = 0; // ids are 1 + the index in Plan::vms
  std::uint32_t bytes = 1024;
  double rate_per_s = 0; // stream: 0 is as fast as the link takes them
  bool poisson = false;
  double start_s = 0, stop_s = 0;
  bool local_allowed = true;  // the channel is enabled and the trust list admits the pair
  bool trust_refused = false; // the channel is enabled but the trust list refuses the pair
  bool datagram = false;      // udp_*: carried like a stream here (backends/host/README.md)
  bool reestablish = true;    // channel.migration: false sets a channel up once, never again
};

// A host-wide shared-memory pool per host (channel sizes from the core's SharedPool).
struct PoolPlan {
  bool enabled = false;
  PoolConfig config;
  Nanos rebalance = 100'000'000; // proportional: how often demand is re-assessed
};

struct EventPlan {
  enum class Kind : std::uint8_t { migrate, create, shutdown } kind = Kind::migrate;
  double at_s = 0;
  VmId vm = 0;
  // migrate: the destination, or nothing for "another host, uniformly" (generators), then
  // resolved at the time with `other` as the simulator does; create: where.
  std::optional<HostId> host;
  std::size_t other = 0;
};

struct Plan {
  std::string name = "unnamed";
  std::size_t hosts = 2;
  std::vector<VmPlan> vms;
  std::vector<WorkPlan> works;
  std::vector<EventPlan> events; // any order
  ChannelConfig channel;         // ring_bytes: without a pool
  PoolPlan pool;
  LinkConfig link;
  std::string membership = "periodic"; // make_membership_source's kind
  MembershipParams membership_params;
  double migration_gbps = 10;
  double duration_s = 1, warmup_s = 0;
  std::vector<double> percentiles = {50, 90, 99, 99.9};
  // The scenario's trust list (channel.trust = "list"), enforced by every host's server where
  // it hands out channel regions; nothing: any two of the run's VMs may share a channel.
  std::optional<std::vector<std::pair<VmId, VmId>>> trusted;
  std::uint64_t seed = 1;
  bool progress = false; // progress lines on stderr
};

} // namespace ivmc::host
