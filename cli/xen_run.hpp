// `ivmc run SCENARIO --backend xen`: a scenario's workloads between Xen domains, on a real
// Xen 4.17 hypervisor booted under QEMU (TCG), reported in the simulator's results.csv schema
// (sim::metric_names, through guest_results), so that one scenario can be compared simulated,
// on KVM guests and on Xen domains.
//
// What runs: one boot of the Xen test image (backends/xen/guest, built here if missing). dom0
// creates one PV domU per scenario VM that takes part in a workload, each on its own routed
// link to dom0 (netfront/netback; dom0 forwards between the links), and runs the workloads one
// at a time (`ivmc-xen-agent plan`): VMs on the same scenario host with the channel enabled
// share a ring over granted pages (the scenario's notification policy: polling, or event
// channels for the others); any other pair talks TCP over the domains' network through dom0.
// One Xen machine stands for every scenario host: "different hosts" selects the network path,
// not a second hypervisor. Streams run saturating for `stream_bytes`; request/response
// workloads make `rr_count` round trips; udp_* run as their TCP counterparts.
//
// Not played (refused unless `ignore_events`): [[event]] and [[generator]]. Metrics the
// domains cannot observe are NaN.
#pragma once

#include "ivmc/sim/run.hpp"
#include "ivmc/sim/scenario.hpp"

#include <cstdint>
#include <string>

namespace ivmc::cli {

struct XenRunOptions {
  std::string image_dir; // the Xen test image (built here if missing)
  std::string log_dir;   // the plan, the run's initramfs and the serial console
  std::uint64_t stream_bytes = 32u << 20;
  std::uint64_t rr_count = 1000;
  bool ignore_events = false;
  bool progress = true; // dom0's steps on stderr as they happen
};

// The plan dom0 runs (`ivmc-xen-agent plan`): `vm` and `work` lines. Throws
// std::runtime_error naming the workload when the scenario cannot run on Xen.
std::string xen_plan(const sim::Scenario& scenario, const XenRunOptions& options);

// Throws std::runtime_error with a clear message on anything it cannot run.
sim::RunResult run_on_xen(const sim::Scenario& scenario, const XenRunOptions& options);

} // namespace ivmc::cli
