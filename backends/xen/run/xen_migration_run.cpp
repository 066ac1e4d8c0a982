// The xen backend's run with scripted migrations: see xen_migration_run.hpp.
#include "ivmc/xen/xen_migration_run.hpp"

#include "ivmc/experiment/choices.hpp"
#include "ivmc/guest_results/guest_results.hpp"
#include "ivmc/posix/workload.hpp"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

namespace ivmc::xen {
namespace {

using experiment::Detection;
using experiment::EventKind;
using experiment::issue_at;
using experiment::Scenario;
using experiment::ScenarioIssue;
using guest_results::report_number;

constexpr double kMinGapS = 4; // save + restore of a 160 MiB domU under TCG: 2-3 s
constexpr double kSettleS = 3; // from the last migration to the end (the link comes back)
constexpr double kMaxPeriodMs = 60'000;

const experiment::VmConfig* vm_named(const Scenario& s, const std::string& name) {
  for (const auto& v : s.vms)
    if (v.name == name) return &v;
  return nullptr;
}

std::string moving_vm(const Scenario& s) {
  std::set<std::string> moved;
  for (const auto& e : s.events)
    if (e.kind == EventKind::migrate) moved.insert(e.vm);
  return moved.size() == 1 ? *moved.begin() : std::string();
}

} // namespace

bool plays_xen_migrations(const Scenario& s, bool ignore_events) {
  return !ignore_events && (!s.events.empty() || !s.generators.empty());
}

std::vector<ScenarioIssue> xen_migration_issues(const Scenario& s) {
  std::vector<ScenarioIssue> out;
  const std::string m = moving_vm(s);
  for (std::size_t i = 0; i < s.generators.size(); ++i)
    out.push_back(issue_at(s, fmt::format("generator[{}]", i),
                           "the xen backend plays no [[generator]] yet (Poisson events); script "
                           "the migrations as [[event]]s"));
  double last = 0;
  std::size_t host = 0;
  if (const auto* v = vm_named(s, m)) host = v->host;
  for (std::size_t i = 0; i < s.events.size(); ++i) {
    const auto& e = s.events[i];
    const std::string key = fmt::format("event[{}]", i);
    if (e.kind != EventKind::migrate) {
      out.push_back(issue_at(s, key,
                             fmt::format("the xen backend plays migrate events only, not {}",
                                         experiment::to_string(e.kind))));
      continue;
    }
    if (m.empty()) {
      out.push_back(issue_at(s, key, "the xen backend plays migrations of one VM only"));
      continue;
    }
    if (e.at_s < last + kMinGapS)
      out.push_back(issue_at(
          s, key,
          fmt::format("at {} s: the xen backend needs {} s between the start and a migration and "
                      "between migrations (xl save + xl restore under TCG take 2-3 s)",
                      e.at_s, kMinGapS)));
    if (e.host == host)
      out.push_back(issue_at(s, key, fmt::format("{} is on host {} already", e.vm, e.host)));
    last = std::max(last, e.at_s);
    host = e.host;
  }
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
  if (last > 0 && s.duration_s < last + kSettleS)
    out.push_back(issue_at(s, "duration_s",
                           fmt::format("the stream must run {} s past the last migration ({} s) "
                                       "on the xen backend",
                                       kSettleS, last)));
  if (s.workloads.size() != 1) {
    out.push_back(issue_at(s, s.workloads.size() > 1 ? "workload[1]" : "workload",
                           "with migrations the xen backend plays exactly one workload (a "
                           "tcp_stream from the migrating VM)"));
  } else {
    const auto& w = s.workloads[0];
    if (w.kind != experiment::WorkloadKind::tcp_stream)
      out.push_back(issue_at(s, "workload[0].kind",
                             fmt::format("with migrations the xen backend plays tcp_stream only, "
                                         "not {} (datagrams and request/response are not played "
                                         "across a save/restore yet)",
                                         experiment::to_string(w.kind))));
    if (!m.empty() && w.from != m)
      out.push_back(issue_at(s, "workload[0].from",
                             fmt::format("the sender must be the migrating VM {}", m)));
    if (w.to == m) out.push_back(issue_at(s, "workload[0].to", "the receiver must not migrate"));
    if (w.rate_per_s != 0)
      out.push_back(issue_at(s, "workload[0].rate_per_s",
                             "with migrations the xen backend streams as fast as it can; a rate "
                             "limit is not applied yet"));
    if (w.start_s != 0 || w.stop_s >= 0)
      out.push_back(
          issue_at(s, "workload[0].start_s", "with migrations the stream runs the whole scenario"));
    for (std::size_t i = 0; i < s.vms.size(); ++i)
      if (s.vms[i].name != w.from && s.vms[i].name != w.to)
        out.push_back(issue_at(s, fmt::format("vm[{}]", i),
                               "with migrations the xen backend creates only the workload's two "
                               "domUs; remove the others"));
  }
  switch (s.membership.detection) {
  case Detection::periodic:
    if (!(s.membership.period_ms >= 1 && s.membership.period_ms <= kMaxPeriodMs))
      out.push_back(issue_at(s, "membership.period_ms",
                             fmt::format("{} ms: dom0's scan period must be 1 ms to {} s",
                                         s.membership.period_ms, kMaxPeriodMs / 1000)));
    break;
  case Detection::watch:
  case Detection::sync:
    break;
  case Detection::static_list:
    out.push_back(issue_at(s, "membership.detection",
                           "static: a restored domain has a new domain id and a new XenStore "
                           "directory, so a view written once cannot name it; the xen backend "
                           "plays periodic, watch and sync"));
    break;
  default:
    out.push_back(issue_at(s, "membership.detection",
                           fmt::format("the xen backend plays periodic, watch and sync "
                                       "membership, not {} yet",
                                       experiment::to_string(s.membership.detection))));
  }
  if (s.membership.race == RacePolicy::none)
    out.push_back(issue_at(s, "membership.race",
                           "race = none loses messages, which the domains' checked stream treats "
                           "as a failure; the xen backend plays resolution and prevention"));
  if (!s.channel.enabled)
    out.push_back(issue_at(s, "channel.enabled",
                           "with migrations the xen backend plays the link (channel on)"));
  if (s.pool.enabled)
    out.push_back(issue_at(s, "pool.enabled", "the xen backend has no shared-memory pool"));
  if (s.channel.trust != experiment::Trust::open)
    out.push_back(issue_at(s, "channel.trust",
                           "with migrations the xen backend plays trust = open only (dom0's "
                           "trust list is the scenario's VMs)"));
  return out;
}

std::string xen_migration_plan(const Scenario& s) {
  const auto& w = s.workloads.at(0);
  std::string plan;
  for (const std::string& name : {w.from, w.to})
    plan += fmt::format("host {} {}\n", name, vm_named(s, name)->host);
  plan += fmt::format("follow {} {} message={} policy={} ring={} race={} duration_ms={}\n", w.from,
                      w.to, w.message_bytes, to_string(s.channel.notify), s.channel.ring_kib * 1024,
                      to_string(s.membership.race),
                      static_cast<std::uint64_t>(std::llround(s.duration_s * 1000)));
  for (const auto& e : s.events)
    plan += fmt::format("migrate {} {} at_ms={}\n", e.vm, e.host,
                        static_cast<std::uint64_t>(std::llround(e.at_s * 1000)));
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
  if (a->at("bytes") != b->at("bytes") || a->at("checksum") != b->at("checksum"))
    throw std::runtime_error(fmt::format("{} sent {} B ({}), {} received {} B ({})", w.from,
                                         a->at("bytes"), a->at("checksum"), w.to, b->at("bytes"),
                                         b->at("checksum")));
  if (moves.size() != s.events.size())
    throw std::runtime_error(
        fmt::format("{} of {} migrations were played", moves.size(), s.events.size()));

  std::map<std::string, double> mx;
  const double secs = report_number(*b, "ns") / 1e9;
  const double mbps = report_number(*b, "bytes") * 8 / secs / 1e6;
  const double messages = report_number(*a, "messages");
  mx["w0_mbps"] = mbps;
  mx["w0_messages_per_s"] = report_number(*b, "messages") / secs;
  mx["w0_local_share"] = report_number(*a, "sent_local") / messages;
  mx["stream_mbps"] = mbps;
  mx["rr_transactions_per_s"] = 0;
  mx["sends"] = messages;
  guest_results::race_metrics(*a, messages, mx);
  mx["frames_local"] = report_number(*a, "frames_local");
  mx["frames_remote"] = report_number(*a, "frames_remote");
  mx["switches_to_local"] = report_number(*a, "to_local");
  mx["switches_to_remote"] = report_number(*a, "to_remote");
  mx["fallbacks"] = report_number(*a, "fallbacks");
  mx["deferred_establishments"] = report_number(*a, "deferred");
  mx["channels_opened"] = report_number(*a, "channels_opened");
  mx["link_probes"] = report_number(*a, "probes");
  mx["membership_probes"] = service ? report_number(*service, "directory_reads") : NAN;
  // Pending data at a restore: the frames the sender re-sent remote from its copy of the ring;
  // recovered: those the receiver still drained from the old domain's pages. In whole
  // messages of the stream's size.
  mx["pending_bytes"] = report_number(*a, "resent") * static_cast<double>(w.message_bytes);
  mx["recovered_bytes"] =
      report_number(*b, "drained_after_break") * static_cast<double>(w.message_bytes);
  // The receiver checked every byte in place; what its link saw missing (gaps) is lost.
  mx["lost_messages"] = report_number(*b, "lost");
  mx["lost_bytes"] = report_number(*b, "lost") * static_cast<double>(w.message_bytes);
  mx["udp_dropped"] = 0; // a TCP stream
  mx["trust_refusals"] = 0;
  mx["pool_refusals"] = 0;
  mx["pool_renewals"] = 0;
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
  summary += fmt::format(
      "  {:.1f} Mb/s, {:.0f} messages, local share {:.2f}; {:.0f} sends in race windows "
      "(exposure {:.4f}), {:.0f} race operations ({:.0f} errors); every byte checked; {:.1f} s "
      "wall\n",
      mbps, messages, mx["w0_local_share"], mx["sends_in_race_window"], mx["race_exposure"],
      mx["race_operations"], mx["race_errors"], out.wall_s);
  out.summary = summary;
  return out;
}

} // namespace ivmc::xen
