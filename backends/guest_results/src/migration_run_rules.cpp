// What both guest backends' migration runs refuse: see migration_run_rules.hpp.
#include "ivmc/guest_results/migration_run_rules.hpp"

#include "ivmc/experiment/choices.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace ivmc::guest_results {

using experiment::issue_at;
using experiment::Scenario;
using experiment::ScenarioIssue;

std::vector<ScenarioIssue> migration_run_issues(const Scenario& s, const MigrationRules& rules) {
  MigrationPlan plan = plan_migrations(s, rules);
  std::vector<ScenarioIssue> out = std::move(plan.issues);
  const std::string& m = plan.vm;
  const std::string& b = rules.backend;
  if (s.workloads.size() != 1) {
    out.push_back(issue_at(s, s.workloads.size() > 1 ? "workload[1]" : "workload",
                           fmt::format("with migrations the {} backend plays exactly one workload "
                                       "(a tcp_stream from the migrating VM)",
                                       b)));
  } else {
    const auto& w = s.workloads[0];
    if (w.kind != experiment::WorkloadKind::tcp_stream)
      out.push_back(issue_at(
          s, "workload[0].kind",
          fmt::format("with migrations the {} backend plays tcp_stream only, not {} (datagrams "
                      "and request/response are not played across migrations yet)",
                      b, experiment::to_string(w.kind))));
    if (!m.empty() && w.from != m)
      out.push_back(issue_at(s, "workload[0].from",
                             fmt::format("the sender must be the migrating VM {}", m)));
    if (w.to == m) out.push_back(issue_at(s, "workload[0].to", "the receiver must not migrate"));
    if (w.rate_per_s != 0)
      out.push_back(issue_at(s, "workload[0].rate_per_s",
                             fmt::format("with migrations the {} backend streams as fast as it "
                                         "can; a rate limit is not applied yet",
                                         b)));
    if (w.start_s != 0 || w.stop_s >= 0)
      out.push_back(
          issue_at(s, "workload[0].start_s", "with migrations the stream runs the whole scenario"));
    for (std::size_t i = 0; i < s.vms.size(); ++i)
      if (s.vms[i].name != w.from && s.vms[i].name != w.to)
        out.push_back(issue_at(s, fmt::format("vm[{}]", i),
                               fmt::format("with migrations the {} backend boots only the "
                                           "workload's two VMs; remove the others",
                                           b)));
  }
  const auto& played = rules.detections;
  if (std::find(played.begin(), played.end(), s.membership.detection) == played.end()) {
    std::string list;
    for (std::size_t i = 0; i < played.size(); ++i)
      list += fmt::format("{}{}",
                          i == 0                   ? ""
                          : i + 1 == played.size() ? " and "
                                                   : ", ",
                          experiment::to_string(played[i]));
    out.push_back(issue_at(
        s, "membership.detection",
        s.membership.detection == experiment::Detection::static_list &&
                !rules.why_not_static.empty()
            ? fmt::format("static: {}; the {} backend plays {}", rules.why_not_static, b, list)
            : fmt::format("the {} backend plays {} membership, not {} yet", b, list,
                          experiment::to_string(s.membership.detection))));
  }
  if (s.membership.race == RacePolicy::none)
    out.push_back(issue_at(s, "membership.race",
                           fmt::format("race = none loses messages, which the checked stream "
                                       "treats as a failure; the {} backend plays resolution and "
                                       "prevention",
                                       b)));
  if (!s.channel.enabled)
    out.push_back(
        issue_at(s, "channel.enabled",
                 fmt::format("with migrations the {} backend plays the link (channel on)", b)));
  if (s.pool.enabled)
    out.push_back(
        issue_at(s, "pool.enabled", fmt::format("the {} backend has no shared-memory pool", b)));
  if (s.channel.trust != experiment::Trust::open)
    out.push_back(issue_at(s, "channel.trust",
                           fmt::format("with migrations the {} backend plays trust = open only{}",
                                       b, rules.trust_note)));
  return out;
}

} // namespace ivmc::guest_results
