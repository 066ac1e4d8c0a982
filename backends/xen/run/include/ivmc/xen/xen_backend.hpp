// The xen backend (`ivmc run|sweep --backend xen`, Python's backend="xen"): a scenario's
// workloads between Xen domains, on a real Xen 4.17 hypervisor booted under QEMU (TCG),
// reported in the results schema (experiment::metric_names, through guest_results), so that one
// scenario can be compared simulated, on KVM guests and on Xen domains.
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
// With [[event]]s (not `ignore_events`) the run plays scripted migrations as xl save +
// xl restore (xen_migration_run.hpp); check() refuses before anything boots what that run
// does not play and what the plan cannot hold (xen_plan.hpp), each with its reason. Without
// events, metrics the domains cannot observe (race windows) are NaN.
#pragma once

#include "ivmc/xen/xen_plan.hpp"

#include "ivmc/experiment/backend.hpp"

#include <memory>

namespace ivmc::xen {

class XenBackend final : public experiment::Backend {
public:
  explicit XenBackend(XenRunOptions options) : o_(std::move(options)) {}
  std::string_view name() const override { return "xen"; }
  std::vector<experiment::ScenarioIssue> check(const experiment::Scenario& s) const override;
  experiment::RunResult run(const experiment::Scenario& s, std::uint64_t seed) override;
  // 1: one Xen machine under TCG keeps both cores busy.
  unsigned default_jobs() const override { return 1; }

private:
  XenRunOptions o_;
};

// The backends table's factory: the image under settings.cache_dir/xen-run-image, the plan,
// initramfs and console under settings.out_dir/xen-logs (or /tmp).
std::unique_ptr<experiment::Backend> make_xen_backend(const experiment::BackendSettings& settings);

} // namespace ivmc::xen
