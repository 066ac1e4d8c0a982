// The SimGrid model: hosts, VMs and live migration in simulated time, driving the core's
// topology and membership sources. SimGrid stays behind this one adapter (its API drifts
// between releases); nothing else in ivmc includes a SimGrid header.
//
// One engine per process: SimGrid keeps global state, and a second engine in the same process
// inherits the first one's clock. Sweeps run points in separate processes.
#pragma once

#include "ivmc/core/membership.hpp"
#include "ivmc/core/platform.hpp"
#include "ivmc/core/topology.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace ivmc::sim {

struct PlatformSpec {
  std::size_t hosts = 2;           // physical machines, HostId 0..hosts-1
  double host_flops = 1e9;         // per host
  double link_bandwidth = 1.25e9;  // bytes/s between two hosts (10 Gb/s)
  double link_latency = 50e-6;     // seconds
  double migration_speed = 1.25e9; // bytes/s the pre-copy plugin may use
};

struct Migration {
  VmId vm = 0;
  HostId from = 0, to = 0;
  double start = 0, end = 0; // simulated seconds
};

// Simulated time as the core's Clock.
class SimClock final : public Clock {
public:
  Nanos now() override;
};

class Model {
public:
  explicit Model(const PlatformSpec& spec); // creates this process's SimGrid engine
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  Topology& topology();
  Clock& clock();
  // Every topology change is reported to `source` as it happens, and its timed work (scans,
  // delayed advertisements) runs at its due times. The source must outlive run().
  void attach(MembershipSource& source);

  // Scripted events, in simulated seconds; played by run().
  void create_vm_at(double t, VmId vm, VmAddress address, HostId host, std::size_t ram_bytes);
  void migrate_at(double t, VmId vm, HostId to);
  void shutdown_at(double t, VmId vm);

  void run();
  double now() const; // simulated seconds

  const std::vector<Migration>& migrations() const;
  // How often SimGrid's migration-end signal fired (twice per migration in 3.32; the model
  // applies each migration once).
  std::uint64_t migration_end_signals() const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace ivmc::sim
