// A scenario: everything one simulated run needs, as plain data. Loaded from TOML
// (scenarios/FORMAT.md documents every key), built from presets, changed by `--set key=value`
// overrides, and validated before anything runs.
//
// Units are in the names: _s seconds, _ms, _us, _ns, _bytes, _kib, _mib, _gbps (10^9 bit/s).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ivmc::sim {

struct PlatformConfig {
  std::size_t hosts = 2;
  std::string hypervisor = "xen";   // xen | kvm: which hypervisor network path co-resident VMs
                                    // use when they do not take the shared-memory channel
  std::string guest_nic = "virtio"; // kvm: virtio | emulated
  double link_gbps = 10.0;          // between two hosts
  double link_latency_us = 50.0;    // one way, host to host
  double migration_gbps = 10.0;     // bandwidth the pre-copy migration may use

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
  std::uint32_t ring_kib = 256;     // per direction, a power of two (ignored with a pool)
  std::string notify = "on_demand"; // polling | on_demand | per_packet | atw | spin_then_block
  std::uint32_t atw_batch = 16;
  double atw_window_us = 100;
  double spin_budget_us = 50;
  bool migration = true;      // the system re-decides the path across migration (Table VI); false:
                              // a channel is set up only between VMs co-resident at start, never
                              // again after it breaks
  std::string trust = "open"; // open: any co-resident peer | list: only `trusted` pairs
  std::vector<std::pair<std::string, std::string>> trusted;

  bool operator==(const ChannelSettings&) const = default;
};

struct MembershipConfig {
  std::string detection = "periodic"; // static | group | periodic | adaptive | watch | sync
  double period_ms = 100;             // periodic; adaptive's initial period
  double phase_ms = 0;
  double propagation_delay_us = 0;
  double period_min_ms = 1, period_max_ms = 1000; // adaptive
  double watch_delay_us = 1000;                   // watch: advertisement delay
  std::string race = "resolution";                // prevention | resolution | none
  double stale_timeout_us = 10'000;               // resolution: a local send this late falls back
  double probe_cost_us = 5;                       // prevention: CPU cost of one truth check

  bool operator==(const MembershipConfig&) const = default;
};

struct PoolSettings {
  bool enabled = false;                    // false: every channel gets ChannelSettings::ring_kib
  std::string allocation = "static_equal"; // static_equal | proportional
  std::size_t pool_mib = 16;               // per host
  std::uint32_t chunk_kib = 64;
  std::uint32_t max_pairs = 8; // static_equal
  double rebalance_ms = 100;   // proportional: how often demand is re-assessed

  bool operator==(const PoolSettings&) const = default;
};

struct WorkloadConfig {
  std::string kind = "tcp_stream"; // tcp_stream | udp_stream | tcp_rr | udp_rr
  std::string from, to;            // VM names
  std::size_t message_bytes = 1024;
  double start_s = 0;
  double stop_s = -1;    // < 0: the scenario's duration
  double rate_per_s = 0; // stream: offered messages/s (0: as fast as the sender can)
  std::size_t line = 0;
  std::string arrivals = "uniform"; // with a rate: evenly spaced, or a Poisson process

  bool operator==(const WorkloadConfig&) const = default;
};

struct EventConfig {
  std::string kind; // migrate | create | shutdown
  double at_s = 0;
  std::string vm;
  std::size_t host = 0; // migrate: destination; create: where
  std::size_t ram_mib = 1024;
  std::size_t line = 0;

  bool operator==(const EventConfig&) const = default;
};

struct GeneratorConfig {
  std::string kind = "migrate"; // migrate | create | shutdown
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
  std::map<std::string, double> costs; // overrides of sim::CostModel parameters, by name
  std::vector<WorkloadConfig> workloads;
  std::vector<EventConfig> events;
  std::vector<GeneratorConfig> generators;
  std::vector<double> latency_percentiles = {50, 90, 99, 99.9};
  std::string preset;        // the preset it started from ("xenloop"), empty if none
  std::string preset_system; // that preset's [preset] system ("XenLoop"), metadata only

  // Every field, including origin and the items' source lines.
  bool operator==(const Scenario&) const = default;
};

// One problem in a scenario: where (file:line or a key path) and what was expected. With a
// file:line, `what` starts with the key ("channel.notify: expected one of ...; got \"atx\"");
// with a key path it does not repeat it.
struct ScenarioIssue {
  std::string where; // "file.toml:12" or "channel.notify"
  std::string what;
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

// Parses TOML text and validates the result; throws ScenarioError with every problem (syntax,
// types, unknown keys, and validate's), each at its line. `origin` names it in messages (a
// path, or "preset:xenloop"). Unknown keys are errors (a typo must not silently run the
// default). Presets: a top-level `preset = "name"` starts from that preset and the file's keys
// override it (its arrays of tables replace the preset's).
Scenario parse_scenario(std::string_view toml_text, const std::string& origin);
Scenario load_scenario(const std::string& path); // reads the file, then parse_scenario
// A scenario argument as the command line takes it: "" or "default" is the embedded default
// scenario; "preset:NAME" is the default with preset NAME applied over it; anything else is a
// file path (load_scenario). Throws ScenarioError (a missing file names the path).
Scenario load_scenario_argument(const std::string& arg);

// Every semantic problem (unknown VM names, hosts out of range, bad enums, negative times...).
// Empty when the scenario can run.
std::vector<ScenarioIssue> validate(const Scenario& s);

// `key=value` overrides with dotted keys: "channel.notify=atw", "membership.period_ms=50",
// "workload.message_bytes=4096" (every workload), "workload[1].message_bytes=4096" (one),
// "costs.syscall_ns=300", "vm[0].host=1", "preset=xenloop" (that preset's tables over `s`).
// Throws ScenarioError naming the key on an unknown key or a value of the wrong type, leaving
// `s` unchanged; does not validate (call validate after the last override).
void apply_override(Scenario& s, std::string_view assignment);

// The scenario as TOML that parse_scenario reads back to an equal scenario (meta.json, docs).
std::string to_toml(const Scenario& s);

// Presets: scenario fragments encoding one surveyed system each (scenarios/presets/*.toml,
// embedded at build time).
struct PresetInfo {
  std::string name;    // "xenloop"
  std::string system;  // "XenLoop"
  std::string summary; // one line: its choices
};
std::vector<PresetInfo> presets();
std::optional<std::string> preset_text(std::string_view name);
// The embedded default scenario (scenarios/default.toml).
std::string default_scenario_text();

} // namespace ivmc::sim
