// The kvm backend (`ivmc run|sweep --backend kvm`, Python's backend="kvm"): a scenario's
// workloads on real QEMU guests, reported in the results schema (experiment::metric_names), so
// that one scenario can be compared simulated and real.
//
// What runs: each workload on its own pair of guests (busybox + the ivmc-guest agent), one
// workload at a time: on a machine of a few cores, concurrent TCG guests would measure their
// contention for the CPU, not the paths. VMs on the same scenario host share that host's
// ivshmem server (a channel in its region, the scenario's notification policy: polling
// without interrupts, the others through VFIO MSI-X); VMs on different hosts, or any pair
// with the channel disabled, use the guests' TCP path (virtio-net over a QEMU socket tunnel).
// Streams run saturating for `stream_bytes` (a scenario's rate limit is not applied); request/
// response workloads make `rr_count` round trips of their message size. udp_stream and udp_rr
// run as their TCP counterparts on the guests' network path (the agent has no UDP workload).
//
// With [[event]]s or [[generator]]s (unless `ignore_events`) the run is
// kvm_migration_run.hpp's instead: the scripted and drawn migrations of one VM as real QMP
// live migrations while it streams to a co-resident VM, the scenario's membership source,
// race windows measured in the guest; check() refuses what that run cannot play (other events
// and generators, draws too close together, more workloads; the reasons there).
// Refused in any case: a message larger than its ring can hold. Without events, metrics the
// guests cannot observe (race windows, membership probes, pools) are NaN.
#pragma once

#include "ivmc/experiment/backend.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace ivmc::kvm {

struct KvmRunOptions {
  std::string image_dir; // the guest image (built here if missing)
  std::string log_dir;   // the guests' console logs
  std::uint64_t stream_bytes = 32u << 20;
  std::uint64_t rr_count = 1000;
  bool ignore_events = false;
  bool progress = true; // a line per workload on stderr
};

class KvmBackend final : public experiment::Backend {
public:
  explicit KvmBackend(KvmRunOptions options) : o_(std::move(options)) {}
  std::string_view name() const override { return "kvm"; }
  std::vector<experiment::ScenarioIssue> check(const experiment::Scenario& s) const override;
  experiment::RunResult run(const experiment::Scenario& s, std::uint64_t seed) override;
  // 1: each TCG guest keeps a CPU busy, and the runs time real paths.
  unsigned default_jobs() const override { return 1; }

private:
  KvmRunOptions o_;
};

// The backends table's factory: the image under settings.cache_dir/run-image, the guests' logs
// under settings.out_dir/guest-logs (or /tmp).
std::unique_ptr<experiment::Backend> make_kvm_backend(const experiment::BackendSettings& settings);

} // namespace ivmc::kvm
