// One simulated run (internal; world_*.cpp by concept): the scenario's VMs on the SimGrid model,
// its workloads as links between them, and the core's channel, link, membership, race and pool code
// driving them in simulated time. See ARCHITECTURE.md ("one message in the simulator") and
// docs/metrics.md.
//
// Every endpoint is a small state machine whose steps are events in the model's queue. A step
// does the real thing to real core objects (a Channel::send into a real ring, a
// LinkSender::send that decides the path) at its simulated instant, and the cost models say
// how long it takes. Nothing here blocks: the channel is used through can_send() and
// request_wake(), and its doorbells schedule the woken endpoint's next step.
#pragma once

#include "cpus.hpp"
#include "pipe.hpp"

#include "ivmc/core/channel.hpp"
#include "ivmc/core/link.hpp"
#include "ivmc/core/membership_sources.hpp"
#include "ivmc/core/pool.hpp"
#include "ivmc/core/race_ledger.hpp"
#include "ivmc/experiment/draws.hpp"
#include "ivmc/experiment/results.hpp"
#include "ivmc/experiment/scenario.hpp"
#include "ivmc/sim/costs.hpp"
#include "ivmc/sim/model.hpp"
#include "ivmc/sim/run.hpp"
#include "ivmc/sim/stage.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ivmc::sim {

using experiment::Arrivals;
using experiment::Detection;
using experiment::EventConfig;
using experiment::EventKind;
using experiment::GeneratorConfig;
using experiment::GuestNic;
using experiment::Hypervisor;
using experiment::RunResult;
using experiment::Scenario;
using experiment::ScenarioError;
using experiment::Trust;
using experiment::VmConfig;
using experiment::WorkloadConfig;

inline constexpr Nanos kUs = 1000, kMs = 1'000'000;

inline Nanos ns(double v) {
  return static_cast<Nanos>(std::llround(v));
}

using Rng = experiment::Draws; // the draws every backend makes alike

class World {
public:
  World(const Scenario& s, const RunOptions& options);
  RunResult run();

private:
  struct VmInfo {
    VmId id;
    std::string name;
  };

  VmId vm_id(const std::string& name) const { return ids_.at(name); }
  bool trusted(VmId a, VmId b) const;
  std::uint32_t pieces_for(std::size_t bytes) const;

  // Cost models (docs/costs.md).
  Nanos local_send_cost(const Pipe& p, std::size_t frame, bool message_ends) const;
  Nanos local_recv_cost(const Pipe& p, std::size_t frame, bool message_ends) const;
  Nanos remote_send_cost(const Pipe& p, std::size_t frame) const;
  Nanos remote_recv_cost(const Pipe& p, std::size_t frame) const;
  Nanos remote_arrival(Pipe& p, std::size_t frame, Nanos leaves);
  Nanos loopback_cost(std::size_t frame) const; // one side of the host's loopback TCP path
  double packets(std::size_t bytes) const {
    return std::max(1.0, std::ceil(static_cast<double>(bytes) / costs_.mss_bytes));
  }
  // Packets on the hypervisor path: TCP is segmented by the (virtual) NIC where it offers TSO.
  double nic_packets(const Pipe& p, std::size_t bytes) const;
  // What one received data record costs in interrupts, and (TCP below IP) what its share of
  // the returning ACK costs each side: the notification policy decides how many of them ring.
  double interrupts_per_record() const;
  double hvm_exit_ns() const;
  // When `cost` ns of VM `vm`'s work that can start now is done, on its vCPUs and its host's
  // cores (now + cost when neither is limited). Dom0's (vhost's) work on host h, likewise.
  Nanos run_on(VmId vm, Nanos cost);
  Nanos dom0_serve(HostId h, Nanos now, Nanos arrive, Nanos work);
  // A busy-polling receiver holds a core of its host (released when it runs again).
  void hold_core(Pipe& p);
  void release_core(Pipe& p);
  // A busy poller (the polling policy) has its core poll_cpu_share of the time: its CPU costs
  // stretch by 1 / share, and it sees a record (or freed space) shm_poll_detect_ns after it is
  // written plus, when its peer was off its core, that peer's wait for it (costs.hpp).
  double poll_stretch() const;
  Nanos poll_detect() const;
  Nanos poll_wait() const; // the part of poll_detect() spent waiting for the peer's core

  void build_pipe(Pipe& p, VmId from, VmId to, Proto proto);
  LocalPath open_local(Pipe& p, bool renew);
  void release_local(Pipe& p);
  void break_channels_of(VmId vm, HostId left);

  // The endpoint state machines.
  void sender_step(Pipe& p);
  void sender_wake(Pipe& p, Nanos delay);
  void receiver_step(Pipe& p);
  void receiver_wake(Pipe& p, Nanos delay, bool by_doorbell);
  void schedule_flush(Pipe& p);

  void setup_workloads();
  void setup_events();
  void rebalance_pools();
  void record_operation(VmId self, VmId peer, LinkOperation op, Errc outcome, std::uint64_t bytes);
  bool measured(Nanos t) const { return t >= warmup_ && t <= end_; }
  RunResult collect(double wall_s);
  // output.changes: every membership change (changes.csv), from the source's records.
  std::vector<experiment::ChangeRecord> change_records() const;
  std::string vm_name(VmId id) const;

  Scenario s_;
  RunOptions options_;
  CostModel costs_;
  Model model_;
  Rng rng_;
  NotifyPolicy policy_;
  RacePolicy race_;
  std::unique_ptr<MembershipSource> source_;
  GroupRegistrationSource* group_ = nullptr;
  std::unique_ptr<RaceWindows> windows_;
  RaceLedger ledger_;
  std::vector<VmInfo> vms_;
  std::unordered_map<std::string, VmId> ids_;
  std::vector<Stage> host_stage_;          // Dom0 / vhost per host
  std::vector<Stage> nic_stage_;           // physical NIC per host
  std::vector<Cpus> host_cpus_;            // platform.cores_per_host > 0: each host's cores
  std::unordered_map<VmId, Cpus> vm_cpus_; // platform.vcpus_per_vm > 0: each VM's vCPUs
  std::vector<std::unique_ptr<SharedPool>> pools_;
  std::unordered_map<PairId, int> pool_refs_;
  std::vector<std::unique_ptr<Pipe>> pipes_;
  // Per VM, the pipes it is an end of, in pipes_ order: a view change or a migration visits its
  // VM's pipes, not all of them (both are per-migration work).
  std::unordered_map<VmId, std::vector<Pipe*>> pipes_of_;
  void add_pipe(std::unique_ptr<Pipe> pipe);
  std::vector<WorkloadStats> wstats_;
  std::vector<std::pair<Pipe*, Pipe*>> workload_pipes_;
  std::vector<std::unique_ptr<std::function<void(Nanos)>>> pacers_; // paced streams' ticks
  Nanos warmup_ = 0, end_ = 0;
  std::uint64_t next_message_ = 1;

  // Totals.
  std::uint64_t data_rings_ = 0, space_rings_ = 0, doorbell_wakeups_ = 0, sleeps_ = 0;
  std::uint64_t sends_ = 0, sends_in_window_ = 0, trust_refusals_ = 0, pool_refusals_ = 0;
  std::uint64_t pending_bytes_ = 0, recovered_bytes_ = 0, channels_opened_ = 0;
  std::uint64_t link_probes_ = 0, udp_dropped_ = 0;
  // Per membership change, in order (the sources number changes by the order of events, which
  // is the order the model reports them to on_topology): the event, and what happened in its
  // race windows (sends, Table IV operations, errors).
  struct ChangeStats {
    TopologyEvent event;
    std::uint64_t stale_sends = 0, race_operations = 0, race_errors = 0;
    // Its observers' records, folded in as they leave the source (retire_records) and, for
    // those still kept at the end, by change_records().
    std::uint64_t observers = 0, notified = 0;
    double delay_sum_s = 0, delay_max_s = 0;
  };
  // One observer's record of a change into that change's statistics (with output.changes).
  static void fold_into(ChangeStats& c, const NotificationRecord& rec);
  // Hands the source's records that no race window can need any more to fold_into and lets
  // the source forget them: memory stays flat however long the run (world_changes.cpp).
  void retire_records();
  ViewKeepingSource* keeping_ = nullptr; // the source, as the record keeper it is
  std::vector<ChangeStats> changes_;
  std::uint64_t events_seen_ = 0;
  ChangeStats& change_stats(std::uint64_t change) {
    if (change >= changes_.size()) changes_.resize(change + 1);
    return changes_[change];
  }
  double pool_util_sum_ = 0;
  std::uint64_t pool_util_samples_ = 0;
};

} // namespace ivmc::sim
