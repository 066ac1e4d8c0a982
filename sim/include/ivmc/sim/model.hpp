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
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ivmc::sim {

struct PlatformSpec {
  std::size_t hosts = 2;           // physical machines, HostId 0..hosts-1
  double host_flops = 1e9;         // per host
  double link_bandwidth = 1.25e9;  // bytes/s between two hosts (10 Gb/s)
  double link_latency = 50e-6;     // seconds
  double migration_speed = 1.25e9; // bytes/s the pre-copy plugin may use
  // SimGrid's own log lines are appended to this file (line-buffered, so the runs of a sweep
  // sharing it do not tear each other's lines); "": only its critical ones, on stderr.
  std::string simgrid_log;
};

struct Migration {
  VmId vm = 0;
  HostId from = 0, to = 0;
  double start = 0, end = 0; // simulated seconds
};

// Simulated time as the core's Clock: the model's current time.
class SimClock final : public Clock {
public:
  explicit SimClock(const Nanos& now) : now_(now) {}
  Nanos now() override { return now_; }

private:
  const Nanos& now_;
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

  // A VM present from the start: in the topology at once (membership sources built afterwards
  // start from it, without records), its SimGrid VM made when run() starts.
  void place_vm(VmId vm, VmAddress address, HostId host, std::size_t ram_bytes);
  // Scripted events, in simulated seconds; played by run().
  void create_vm_at(double t, VmId vm, VmAddress address, HostId host, std::size_t ram_bytes);
  void migrate_at(double t, VmId vm, HostId to);
  void shutdown_at(double t, VmId vm);

  // Channel-level events: the world's state machines are callbacks at simulated times, kept in
  // the model's own queue (ordered by time, then by scheduling order, so runs are
  // deterministic), not SimGrid activities: SimGrid slows down badly with many messages in
  // flight. While no migration is under way nothing in SimGrid moves, so these events run
  // ahead of SimGrid's clock without consulting it; while one is, SimGrid runs ahead alone to the
  // next event that acts on it, reporting migration ends, which are queued at their own times.
  using Callback = std::function<void()>;
  void at(Nanos t, Callback callback); // t >= now_ns()
  // The same for a callback that acts on SimGrid (creates, moves or stops VMs): SimGrid's clock
  // is brought to `t` first.
  void at_sync(Nanos t, Callback callback);
  // Told of every topology change, after the attached membership sources.
  void on_topology(std::function<void(const TopologyEvent&)> callback);
  // run() stops at this simulated time (default: when nothing is left to do).
  void stop_at(double t);
  // Whether a scripted migration or shutdown was skipped (the VM was already moving, gone, or
  // already on the destination), and how many.
  std::uint64_t skipped_events() const;

  // Called from inside run() every few thousand queue events with the simulated time (seconds),
  // for progress reports: the callback reads the wall clock; the run pays one counter test per
  // event.
  void on_progress(std::function<void(double now_s)> callback);

  void run();
  double now() const; // simulated seconds
  Nanos now_ns() const;
  std::uint64_t events() const; // queue events run
  bool migrating(VmId vm) const;

  const std::vector<Migration>& migrations() const;
  // How often SimGrid's migration-end signal fired (twice per migration in 3.32; the model
  // applies each migration once).
  std::uint64_t migration_end_signals() const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace ivmc::sim
