// A scenario: everything one run needs, as plain data, whatever the backend (the simulator, or
// real processes, QEMU guests or Xen domains). Loaded from TOML (load.hpp; scenarios/FORMAT.md
// documents every key), built from presets (presets.hpp), changed by `--set key=value`
// overrides (overrides.hpp), and validated (validate.hpp) before anything runs. Closed sets of
// choices are enums (choices.hpp), parsed once where the scenario is loaded.
//
// Units are in the names: _s seconds, _ms, _us, _ns, _bytes, _kib, _mib, _gbps (10^9 bit/s).
#pragma once

#include "ivmc/experiment/choices.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ivmc::experiment {

struct PlatformConfig {
  std::size_t hosts = 2;
  Hypervisor hypervisor = Hypervisor::xen; // which hypervisor network path co-resident VMs use
                                           // when they do not take the shared-memory channel
  GuestNic guest_nic = GuestNic::virtio;   // kvm only
  double link_gbps = 10.0;                 // between two hosts
  double link_latency_us = 50.0;           // one way, host to host
  double migration_gbps = 10.0;            // bandwidth the pre-copy migration may use
  std::uint32_t cores_per_host = 0; // CPUs each host's guests and Dom0/vhost share; 0: as many
                                    // as the work needs (no contention)
  std::uint32_t vcpus_per_vm = 0;   // CPUs each VM's endpoints share; 0: as many as needed
  bool hvm = false; // xen only: hardware VMs (HVM) instead of paravirtualised (PV) guests; every
                    // notification sent and interrupt taken costs a VM exit (costs.xen_hvm_exit_ns)

  bool operator==(const PlatformConfig&) const = default;
};

struct VmConfig {
  std::string name;
  std::size_t host = 0;
  std::size_t ram_mib = 1024;
  std::size_t line = 0; // where it was defined (0: not from a file)

  bool operator==(const VmConfig&) const = default;
};

struct ChannelSettings {
  bool enabled = true; // false: the baseline, every flow takes the hypervisor path
  int layer = 3;       // survey Table II: 1 library/system call (IVC, VMPI, Nahanni), 2 socket
                       // (XWAY, XenSocket, XenVMC), 3 below IP (XenLoop, MMNet, MemPipe)
  std::uint32_t ring_kib = 256; // per direction, a power of two (ignored with a pool)
  NotifyPolicy notify = NotifyPolicy::on_demand;
  std::uint32_t atw_batch = 16;
  double atw_window_us = 100;
  double spin_budget_us = 50;
  bool migration = true;     // the system re-decides the path across migration (Table VI); false:
                             // a channel is set up only between VMs co-resident at start, never
                             // again after it breaks
  Trust trust = Trust::open; // open: any co-resident peer; list: only the `trusted` pairs
  std::vector<std::pair<std::string, std::string>> trusted;
  std::uint32_t copies = 2; // copies of the data through the channel: 2 into and out of a ring;
                            // 1 the receiver reads the sender's mapped memory (MMNet/Fido)
  bool tcp_only = false;    // the channel carries TCP streams only; UDP takes the hypervisor
                            // path (XWAY, XenSocket: survey 8.1)

  bool operator==(const ChannelSettings&) const = default;
};

struct MembershipConfig {
  Detection detection = Detection::periodic;
  double period_ms = 100; // periodic; adaptive's initial period
  double phase_ms = 0;
  double propagation_delay_us = 0;
  double period_min_ms = 1, period_max_ms = 1000; // adaptive bounds
  double probe_worth_ms = 2.5;                    // adaptive: race-window time one scan is worth
  double rate_horizon_s = 30;                     // adaptive: the rate estimate's time constant
  double watch_delay_us = 1000;                   // watch: advertisement delay
  RacePolicy race = RacePolicy::resolution;
  double stale_timeout_us = 10'000; // resolution: a local send this late falls back
  double probe_cost_us = 5;         // prevention: CPU cost of one truth check

  bool operator==(const MembershipConfig&) const = default;
};

struct PoolSettings {
  bool enabled = false; // false: every channel gets ChannelSettings::ring_kib
  PoolPolicy allocation = PoolPolicy::static_equal;
  std::size_t pool_mib = 16; // per host
  std::uint32_t chunk_kib = 64;
  std::uint32_t max_pairs = 8; // static_equal
  double rebalance_ms = 100;   // proportional: how often demand is re-assessed

  bool operator==(const PoolSettings&) const = default;
};

// What a run writes besides results.csv (docs/results.md).
struct OutputSettings {
  bool changes = false; // changes.csv: one row per membership change (time, detection, stale ops)

  bool operator==(const OutputSettings&) const = default;
};

struct WorkloadConfig {
  WorkloadKind kind = WorkloadKind::tcp_stream;
  std::string from, to; // VM names
  std::size_t message_bytes = 1024;
  double start_s = 0;
  double stop_s = -1;    // < 0: the scenario's duration
  double rate_per_s = 0; // stream: offered messages/s (0: as fast as the sender can)
  std::size_t line = 0;
  Arrivals arrivals = Arrivals::uniform; // with a rate: evenly spaced, or a Poisson process

  bool operator==(const WorkloadConfig&) const = default;
};

struct EventConfig {
  EventKind kind = EventKind::migrate;
  double at_s = 0;
  std::string vm;
  std::size_t host = 0; // migrate: destination; create: where
  std::size_t ram_mib = 1024;
  std::size_t line = 0;

  bool operator==(const EventConfig&) const = default;
};

struct GeneratorConfig {
  EventKind kind = EventKind::migrate;
  double rate_per_s = 1;        // Poisson
  std::vector<std::string> vms; // candidates (empty: every VM)
  double start_s = 0, stop_s = -1;
  std::size_t line = 0;

  bool operator==(const GeneratorConfig&) const = default;
};

struct Scenario {
  std::string name = "unnamed";
  std::string description;
  std::string origin = "<built>"; // the file (or preset) it came from, for messages
  double duration_s = 1.0;
  double warmup_s = 0.0;
  std::uint64_t seed = 1;
  PlatformConfig platform;
  std::vector<VmConfig> vms;
  ChannelSettings channel;
  MembershipConfig membership;
  PoolSettings pool;
  OutputSettings output;
  std::map<std::string, double> costs; // overrides of sim::CostModel parameters, by name
  // costs.profile: the cost profile the overrides apply over, a built-in profile's name or a
  // profile file's path (relative ones resolved against the scenario file's folder when it
  // was loaded); "" is the default profile (sim/profiles, docs/costs.md "Cost profiles").
  std::string cost_profile;
  std::vector<WorkloadConfig> workloads;
  std::vector<EventConfig> events;
  std::vector<GeneratorConfig> generators;
  std::vector<double> latency_percentiles = {50, 90, 99, 99.9};
  std::string preset;        // the preset it started from ("xenloop"), empty if none
  std::string preset_system; // that preset's [preset] system ("XenLoop"), metadata only
  // Where the loader found each key it set: key path ("channel.ring_kib", "workload[1].kind")
  // -> "origin:line" (a preset's keys: "preset:xenloop:3"). An override drops the entries of
  // the keys it sets. Only for messages (issue_at); empty for a scenario built in code.
  std::map<std::string, std::string> set_at;

  // Every field, including origin and the items' source lines.
  bool operator==(const Scenario&) const = default;
};

// One problem in a scenario: where (file:line or a key path) and what was expected. With a
// file:line, `what` starts with the key ("channel.notify: expected one of ...; got \"atx\"");
// with a key path it does not repeat it.
struct ScenarioIssue {
  std::string where; // "file.toml:12" or "channel.notify"
  std::string what;
  // Only the run's seed causes it (a [[generator]]'s draws for that seed): another seed of the
  // same scenario may play. `ivmc run` refuses it like any other; a sweep reports that run
  // refused and makes the others (sweep.hpp).
  bool per_seed = false;
};

// Thrown by the loaders and by run on an invalid scenario; what() lists every issue, one per
// line, "where: what".
class ScenarioError : public std::runtime_error {
public:
  explicit ScenarioError(std::vector<ScenarioIssue> issues);
  const std::vector<ScenarioIssue>& issues() const { return issues_; }

private:
  std::vector<ScenarioIssue> issues_;
};

// An issue about `key` (a key path: "channel.ring_kib", "workload[1].message_bytes", or
// "event[0]" for a whole item) as validate reports them: at the "origin:line" that set it when
// known (from s.set_at, or the item's line), `what` then starting with the key; else at the key
// path. Backends report what they cannot play this way (Backend::check).
ScenarioIssue issue_at(const Scenario& s, const std::string& key, std::string what);

} // namespace ivmc::experiment
