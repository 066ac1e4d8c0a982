// See xen_plan.hpp.
#include "ivmc/xen/xen_plan.hpp"

#include "ivmc/core/channel.hpp"
#include "ivmc/experiment/choices.hpp"
#include "ivmc/guest_results/guest_results.hpp"
#include "ivmc/xen/xen_migration_run.hpp"

#include <fmt/format.h>

namespace ivmc::xen {
namespace {

using experiment::Scenario;
using experiment::WorkloadConfig;

// QEMU's 2 GiB less dom0's 512 MiB and Xen's own share, at 160 MiB per domU.
constexpr std::size_t kMaxDomains = 8;
// The grant pages a domU may share (xen-gntalloc's default limit is 1024 pages): both rings
// and the control area of one channel, with room to spare.
constexpr std::uint32_t kMaxRingKib = 1024;

// The VMs that take part in workloads, in the order the scenario declares them: one domU each.
std::vector<std::string> domains(const Scenario& s) {
  std::vector<std::string> vms;
  for (const experiment::VmConfig& v : s.vms)
    for (const WorkloadConfig& w : s.workloads)
      if (w.from == v.name || w.to == v.name) {
        vms.push_back(v.name);
        break;
      }
  return vms;
}

} // namespace

std::vector<experiment::ScenarioIssue> xen_plan_issues(const Scenario& s) {
  std::vector<experiment::ScenarioIssue> out;
  if (s.workloads.empty())
    out.push_back(experiment::issue_at(s, "workload", "the xen backend needs a workload to run"));
  if (s.channel.ring_kib > kMaxRingKib)
    out.push_back(experiment::issue_at(
        s, "channel.ring_kib",
        fmt::format("{} KiB rings: the xen backend shares at most {} KiB rings (a domU may grant "
                    "1024 pages)",
                    s.channel.ring_kib, kMaxRingKib)));
  if (const auto vms = domains(s); vms.size() > kMaxDomains)
    out.push_back(experiment::issue_at(
        s, "vm",
        fmt::format("{} VMs take part in workloads; one Xen machine under QEMU holds at most {} "
                    "domUs",
                    vms.size(), kMaxDomains)));
  const std::uint32_t ring = s.channel.ring_kib * 1024;
  for (std::size_t i = 0; i < s.workloads.size(); ++i) {
    const WorkloadConfig& w = s.workloads[i];
    for (const auto& [key, name] : {std::pair{"from", w.from}, std::pair{"to", w.to}})
      if (name.empty() || name.find_first_of(" \t\n=#") != std::string::npos)
        out.push_back(experiment::issue_at(s, fmt::format("workload[{}].{}", i, key),
                                           fmt::format("VM name '{}' cannot go in a plan", name)));
    const std::string key = fmt::format("workload[{}].message_bytes", i);
    if (w.message_bytes == 0 || w.message_bytes > (1u << 20))
      out.push_back(experiment::issue_at(
          s, key,
          fmt::format("{} B: the xen backend sends messages of 1 B to 1 MiB", w.message_bytes)));
    else if (guest_results::through_channel(s, w) && w.message_bytes > wire::max_payload_for(ring))
      out.push_back(experiment::issue_at(
          s, key,
          fmt::format("workload {} ({} -> {}): {} B messages do not fit a {} KiB ring "
                      "(channel.ring_kib; at most {} B)",
                      i, w.from, w.to, w.message_bytes, s.channel.ring_kib,
                      wire::max_payload_for(ring))));
  }
  return out;
}

std::string xen_plan(const Scenario& s, const XenRunOptions& o) {
  if (auto issues = xen_plan_issues(s); !issues.empty())
    throw experiment::ScenarioError(std::move(issues));
  const std::uint32_t ring = s.channel.ring_kib * 1024;
  const auto vms = domains(s);
  std::string plan = fmt::format("# ivmc run --backend xen: {} ({})\n", s.name, s.origin);
  for (std::size_t k = 0; k < vms.size(); ++k)
    plan += fmt::format("vm {} 10.0.{}.2\n", vms[k], k + 1);
  if (guest_results::plays_migrations(s, o.ignore_events)) return plan + xen_migration_plan(s);
  for (std::size_t i = 0; i < s.workloads.size(); ++i) {
    const WorkloadConfig& w = s.workloads[i];
    const bool rr = experiment::is_request_response(w.kind);
    const bool ring_path = guest_results::through_channel(s, w);
    plan += fmt::format("work {} {} {} {} message={}", rr ? "rr" : "stream",
                        ring_path ? "ring" : "net", w.from, w.to, w.message_bytes);
    if (ring_path) plan += fmt::format(" policy={} ring={}", to_string(s.channel.notify), ring);
    plan +=
        rr ? fmt::format(" count={}\n", o.rr_count) : fmt::format(" bytes={}\n", o.stream_bytes);
  }
  return plan;
}

} // namespace ivmc::xen
