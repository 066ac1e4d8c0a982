// `ivmc run SCENARIO --backend kvm`: a scenario's workloads on real QEMU guests, reported in
// the simulator's results.csv schema (sim::metric_names), so that one scenario can be
// compared simulated and real.
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
// Not played (refused unless `ignore_events`): [[event]] and [[generator]] (migrations,
// creation, shutdown): the link across migration has its own vm test. Metrics the guests
// cannot observe (race windows, membership probes, pools) are NaN.
#pragma once

#include "ivmc/sim/run.hpp"
#include "ivmc/sim/scenario.hpp"

#include <cstdint>
#include <string>

namespace ivmc::cli {

struct KvmRunOptions {
  std::string image_dir; // the guest image (built here if missing)
  std::string log_dir;   // the guests' console logs
  std::uint64_t stream_bytes = 32u << 20;
  std::uint64_t rr_count = 1000;
  bool ignore_events = false;
  bool progress = true; // a line per workload on stderr
};

// Throws std::runtime_error with a clear message on anything it cannot run.
sim::RunResult run_on_kvm(const sim::Scenario& scenario, const KvmRunOptions& options);

} // namespace ivmc::cli
