// The xen backend's run with scripted migrations: see xen_migration_run.hpp.
#include "ivmc/xen/xen_migration_run.hpp"

#include "ivmc/experiment/choices.hpp"
#include "ivmc/guest_results/guest_results.hpp"
#include "ivmc/guest_results/migration_results.hpp"
#include "ivmc/guest_results/migration_run_rules.hpp"
#include "ivmc/posix/workload.hpp"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <sstream>
#include <stdexcept>

namespace ivmc::xen {
namespace {

using experiment::Detection;
using experiment::issue_at;
using experiment::Scenario;
using experiment::ScenarioIssue;
using guest_results::report_number;

constexpr double kMaxPeriodMs = 60'000;

} // namespace

const guest_results::MigrationRules& xen_migration_rules() {
  // 4 s: save + restore of a 160 MiB domU under TCG take 2-3 s; 3 s after the last one for
  // the link to come back to a ring. No draws yet; dom0's trust list is the scenario's; dom0's
  // view service scans XenStore, watches it, or updates before the restored domain runs.
  static const guest_results::MigrationRules rules{
      "xen",
      4,
      "xl save + xl restore under TCG take 2-3 s",
      3,
      /*plays_draws=*/false,
      "the xen backend plays no [[generator]] yet (Poisson events); script the migrations as "
      "[[event]]s",
      " (dom0's trust list is the scenario's VMs)",
      {Detection::periodic, Detection::watch, Detection::sync},
      "a restored domain has a new domain id and a new XenStore directory, so a view written "
      "once cannot name it"};
  return rules;
}

std::vector<ScenarioIssue> xen_migration_issues(const Scenario& s) {
  std::vector<ScenarioIssue> out = guest_results::migration_run_issues(s, xen_migration_rules());
  // dom0's views name VMs in a restricted alphabet (follow_view.hpp).
  for (std::size_t i = 0; i < s.vms.size(); ++i) {
    const std::string& n = s.vms[i].name;
    const bool ok =
        !n.empty() && n.size() <= 32 &&
        n.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") == std::string::npos;
    if (!ok)
      out.push_back(issue_at(s, fmt::format("vm[{}].name", i),
                             fmt::format("'{}': with migrations the xen backend needs VM names of "
                                         "1-32 characters a-z, 0-9, _ and - (they go in dom0's "
                                         "views)",
                                         n)));
  }
  if (s.membership.detection == Detection::periodic &&
      !(s.membership.period_ms >= 1 && s.membership.period_ms <= kMaxPeriodMs))
    out.push_back(issue_at(s, "membership.period_ms",
                           fmt::format("{} ms: dom0's scan period must be 1 ms to {} s",
                                       s.membership.period_ms, kMaxPeriodMs / 1000)));
  return out;
}

std::string xen_migration_plan(const Scenario& s) {
  const auto& w = s.workloads.at(0);
  std::string plan;
  for (const std::string& name : {w.from, w.to})
    plan += fmt::format("host {} {}\n", name, guest_results::vm_named(s, name)->host);
  plan += fmt::format("follow {} {} message={} policy={} ring={} race={} duration_ms={}\n", w.from,
                      w.to, w.message_bytes, to_string(s.channel.notify), s.channel.ring_kib * 1024,
                      to_string(s.membership.race),
                      static_cast<std::uint64_t>(std::llround(s.duration_s * 1000)));
  // The migrations as the shared rule set plans them (check() passed: all of w.from's).
  for (const auto& m : guest_results::plan_migrations(s, xen_migration_rules()).migrations)
    plan += fmt::format("migrate {} {} at_ms={}\n", w.from, m.host,
                        static_cast<std::uint64_t>(std::llround(m.at_s * 1000)));
  const char* learning = s.membership.detection == Detection::watch  ? "watch"
                         : s.membership.detection == Detection::sync ? "sync"
                                                                     : "scan";
  plan += fmt::format("membership {} period_ms={}\n", learning,
                      static_cast<std::uint64_t>(std::llround(s.membership.period_ms)));
  return plan;
}

experiment::RunResult xen_migration_results(const Scenario& s, const std::string& console,
                                            std::chrono::steady_clock::time_point wall0) {
  const auto& w = s.workloads.at(0);
  std::optional<posix::ReportFields> a, b;
  std::vector<posix::ReportFields> moves;
  std::optional<posix::ReportFields> service;
  std::istringstream lines(console);
  for (std::string line; std::getline(lines, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    // dom0's own lines: "TAG key=value ..." (no quoted values).
    auto fields_after = [&](std::string_view tag) -> std::optional<posix::ReportFields> {
      const std::size_t at = line.find(tag);
      if (at == std::string::npos) return std::nullopt;
      posix::ReportFields f;
      std::istringstream words(line.substr(at + tag.size()));
      for (std::string word; words >> word;)
        if (const std::size_t eq = word.find('='); eq != std::string::npos && eq > 0)
          f[word.substr(0, eq)] = word.substr(eq + 1);
      return f;
    };
    if (auto f = fields_after("IVMC-MOVE ")) moves.push_back(std::move(*f));
    if (auto f = fields_after("IVMC-SERVICE ")) service = std::move(*f);
    auto f = posix::parse_report(line);
    if (!f || !f->count("w") || f->at("w") != "0" || !f->count("side")) continue;
    if (!f->count("ok") || f->at("ok") != "1") {
      const auto err = f->find("error");
      throw std::runtime_error(fmt::format(
          "the {} side ({}) failed: {}", f->at("side"), f->at("side") == "from" ? w.from : w.to,
          err == f->end() ? std::string("no error given") : err->second));
    }
    (f->at("side") == "from" ? a : b) = std::move(*f);
  }
  if (!a || !b) throw std::runtime_error(fmt::format("no outcome from {}", !a ? w.from : w.to));
  guest_results::check_stream_delivered(w, *a, *b);
  const std::size_t planned =
      guest_results::plan_migrations(s, xen_migration_rules()).migrations.size();
  if (moves.size() != planned)
    throw std::runtime_error(fmt::format("{} of {} migrations were played", moves.size(), planned));

  std::map<std::string, double> mx;
  guest_results::stream_migration_metrics(w, *a, *b, mx);
  const double messages = mx.at("sends");
  mx["membership_probes"] = service ? report_number(*service, "directory_reads") : NAN;
  // The receiver checked every byte in place; what its link saw missing (gaps) is lost.
  mx["lost_messages"] = report_number(*b, "lost");
  mx["lost_bytes"] = report_number(*b, "lost") * static_cast<double>(w.message_bytes);
  double mig_sum = 0;
  for (const auto& m : moves)
    mig_sum += (report_number(m, "save_ms") + report_number(m, "restore_ms") +
                report_number(m, "unpause_ms")) /
               1e3;
  mx["migrations"] = static_cast<double>(moves.size());
  mx["migration_s_mean"] = moves.empty() ? 0 : mig_sum / static_cast<double>(moves.size());

  experiment::RunResult out;
  out.metrics = experiment::schema_metrics(s, mx);
  out.events = static_cast<std::uint64_t>(messages);
  out.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  std::string summary = fmt::format(
      "{} on Xen 4.17 under QEMU (TCG): {} -> {} streaming across {} save/restore move(s), "
      "dom0's view service by {}, race {}\n",
      s.name, w.from, w.to, moves.size(), service ? service->at("learning") : std::string("?"),
      to_string(s.membership.race));
  for (const auto& m : moves)
    summary += fmt::format("  move at {} s: host {} -> {}, domain {} -> {}, save {} ms, restore "
                           "{} ms\n",
                           m.at("at_s"), m.at("from_host"), m.at("to_host"), m.at("old_domid"),
                           m.at("new_domid"), m.at("save_ms"), m.at("restore_ms"));
  summary += guest_results::stream_migration_summary(mx, out.wall_s);
  out.summary = summary;
  return out;
}

} // namespace ivmc::xen
