// The plan dom0 runs for `ivmc run --backend xen` (`ivmc-xen-agent plan`): one `vm` line per
// domU and one `work` line per workload, and what a scenario asks that one Xen machine under
// QEMU cannot hold. No Xen needed: unit-tested anywhere.
#pragma once

#include "ivmc/experiment/scenario.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace ivmc::xen {

struct XenRunOptions {
  std::string image_dir; // the Xen test image (built here if missing)
  std::string log_dir;   // the plan, the run's initramfs and the serial console
  std::uint64_t stream_bytes = 32u << 20;
  std::uint64_t rr_count = 1000;
  bool ignore_events = false;
  bool progress = true; // dom0's steps on stderr as they happen
};

// Everything in `s` the plan cannot hold, each at its key (file:line when known): rings larger
// than a domU may grant, more domUs than the machine holds, VM names a plan line cannot carry,
// messages larger than their ring or than 1 MiB, no workloads.
std::vector<experiment::ScenarioIssue> xen_plan_issues(const experiment::Scenario& s);

// The plan: `vm` and `work` lines. Throws experiment::ScenarioError (xen_plan_issues) when the
// scenario cannot run on Xen.
std::string xen_plan(const experiment::Scenario& s, const XenRunOptions& options);

} // namespace ivmc::xen
