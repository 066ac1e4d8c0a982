// See guest_results.hpp.
#include "ivmc/guest_results/guest_results.hpp"

#include "ivmc/experiment/choices.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <map>
#include <stdexcept>
#include <string_view>

#include <unistd.h>

namespace ivmc::guest_results {

using experiment::Scenario;
using experiment::WorkloadConfig;
namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
} // namespace

double report_number(const ReportFields& r, const char* key) {
  const auto it = r.find(key);
  if (it == r.end() || it->second.empty()) return kNaN;
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  return *end == '\0' ? v : kNaN;
}

void race_metrics(const ReportFields& sender, double messages, std::map<std::string, double>& mx) {
  const double in_window = report_number(sender, "sends_in_window");
  mx["sends_in_race_window"] = in_window;
  mx["race_exposure"] = messages > 0 ? in_window / messages : 0;
  double race_ops = 0, race_errors = 0, race_deferred = 0;
  static constexpr const char* rows[] = {"establishment", "pending_data", "teardown"};
  static constexpr const char* cols[] = {"migration_in", "creation", "migration_out", "shutdown"};
  for (int op = 0; op < 3; ++op) {
    for (int k = 0; k < 4; ++k) {
      const std::string key = fmt::format("race_{}_{}_", op, k);
      const double ops = report_number(sender, (key + "ops").c_str());
      race_ops += ops;
      race_errors += report_number(sender, (key + "errors").c_str());
      race_deferred += report_number(sender, (key + "deferred").c_str());
      mx[fmt::format("race_{}_{}", rows[op], cols[k])] = ops;
    }
  }
  mx["race_operations"] = race_ops;
  mx["race_errors"] = race_errors;
  mx["race_deferred"] = race_deferred;
}

bool through_channel(const Scenario& s, const WorkloadConfig& w) {
  auto host_of = [&](const std::string& vm) {
    for (const experiment::VmConfig& v : s.vms)
      if (v.name == vm) return v.host;
    throw std::runtime_error("no VM named '" + vm + "'");
  };
  return s.channel.enabled && host_of(w.from) == host_of(w.to);
}

std::vector<experiment::ScenarioIssue> unplayed_events(const Scenario& s, bool ignore_events,
                                                       const char* backend) {
  std::vector<experiment::ScenarioIssue> out;
  if (ignore_events) return out;
  const std::string why = fmt::format(
      "the {} backend plays no [[event]] or [[generator]] yet (migrations, creation, shutdown); "
      "pass --ignore-events to run the workloads with the initial placement",
      backend);
  for (std::size_t i = 0; i < s.events.size(); ++i)
    out.push_back(experiment::issue_at(s, fmt::format("event[{}]", i), why));
  for (std::size_t i = 0; i < s.generators.size(); ++i)
    out.push_back(experiment::issue_at(s, fmt::format("generator[{}]", i), why));
  return out;
}

std::string log_dir(const std::string& out_dir, const char* leaf) {
  return out_dir.empty() ? "/tmp/ivmc-run-logs-" + std::to_string(::getpid())
                         : out_dir + "/" + leaf;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

void build_guest_image(const std::string& script, const std::string& agent,
                       const std::string& dir) {
  const std::string cmd = fmt::format("{} --agent {} --out {} >&2", shell_quote(script),
                                      shell_quote(agent), shell_quote(dir));
  if (std::system(cmd.c_str()) != 0)
    throw std::runtime_error("the guest image could not be built (" + cmd + ")");
}

experiment::RunResult guest_results(const Scenario& s,
                                    const std::vector<GuestWorkloadOutcome>& outcomes,
                                    std::string summary,
                                    std::chrono::steady_clock::time_point wall0) {
  std::map<std::string, double> m;
  double stream_mbps = 0, rr_tps = 0, data_rings = 0, wakeups = 0, sleeps = 0;
  double frames_local = 0, frames_remote = 0, channels = 0;
  for (std::size_t i = 0; i < outcomes.size() && i < s.workloads.size(); ++i) {
    const WorkloadConfig& w = s.workloads[i];
    const ReportFields& a = outcomes[i].from;
    const ReportFields& b = outcomes[i].to;
    const bool rr = experiment::is_request_response(w.kind);
    const std::string pre = fmt::format("w{}_", i);
    std::string line;
    if (rr) {
      const double mean_ns = report_number(a, "rtt_mean_ns");
      const double tps = mean_ns > 0 ? 1e9 / mean_ns : kNaN;
      m[pre + "transactions_per_s"] = tps;
      rr_tps += tps;
      for (double pct : s.latency_percentiles) {
        const char* key = pct == 50 ? "rtt_p50_ns" : pct == 99 ? "rtt_p99_ns" : nullptr;
        m[pre + fmt::format("rtt_p{}_us", pct)] = key ? report_number(a, key) / 1e3 : kNaN;
      }
      line = fmt::format("{:10.0f} trans/s  rtt p50 {:.1f} us", tps,
                         report_number(a, "rtt_p50_ns") / 1e3);
    } else {
      const double secs = report_number(b, "ns") / 1e9;
      const double mbps = report_number(b, "bytes") * 8 / secs / 1e6;
      m[pre + "mbps"] = mbps;
      m[pre + "messages_per_s"] = report_number(b, "messages") / secs;
      stream_mbps += mbps;
      for (double pct : s.latency_percentiles)
        m[pre + fmt::format("latency_p{}_us", pct)] = kNaN; // no one-way clock in the guests
      line = fmt::format("{:10.1f} Mb/s", mbps);
    }
    // The path counters both agents measured (hostile input: validated, else NaN). The
    // request direction's share, as the simulation's; frames from both ends, as its senders'
    // (a reply is a frame too); a ring instance once both of its ends opened it.
    const auto pa = posix::parse_path_counters(a), pb = posix::parse_path_counters(b);
    if (pa) {
      const double sent = static_cast<double>(pa->frames_local + pa->frames_remote);
      m[pre + "local_share"] = sent > 0 ? static_cast<double>(pa->frames_local) / sent : 0;
    } else {
      m[pre + "local_share"] = kNaN;
    }
    if (pa && pb) {
      frames_local += static_cast<double>(pa->frames_local + pb->frames_local);
      frames_remote += static_cast<double>(pa->frames_remote + pb->frames_remote);
      channels += static_cast<double>(std::min(pa->channels_opened, pb->channels_opened));
    } else {
      frames_local = frames_remote = channels = kNaN;
    }
    const char* measured = !pa                                         ? "path not reported"
                           : pa->frames_local + pa->frames_remote == 0 ? "no frames sent"
                           : pa->frames_remote == 0                    ? "channel"
                           : pa->frames_local == 0                     ? "network"
                                                                       : "channel+network";
    const char* planned = outcomes[i].planned_local ? "channel" : "network";
    for (const auto* r : {&a, &b}) {
      // A path without a ring (TCP) reports none of these: it adds nothing.
      auto add = [&](double& total, const char* key) {
        const double v = report_number(*r, key);
        if (v == v) total += v;
      };
      add(data_rings, "data_rings");
      add(wakeups, "wakeups");
      add(sleeps, "sleeps");
    }
    summary +=
        fmt::format("  {:<10} {:>6} -> {:<6} {:>7} B  {}  {}{}\n", experiment::to_string(w.kind),
                    w.from, w.to, w.message_bytes, line, measured,
                    std::string_view(measured) == planned ? std::string()
                                                          : fmt::format(" (planned: {})", planned));
  }
  m["stream_mbps"] = stream_mbps;
  m["rr_transactions_per_s"] = rr_tps;
  m["notifications"] = data_rings; // the agents report data rings; space rings are not counted
  m["data_notifications"] = data_rings;
  m["wakeups"] = wakeups;
  m["sleeps"] = sleeps;
  m["sends"] = frames_local + frames_remote;
  m["frames_local"] = frames_local;
  m["frames_remote"] = frames_remote;
  m["channels_opened"] = channels;
  // Every stream was checked end to end (checksums) and every round trip returned.
  m["lost_messages"] = 0;
  m["lost_bytes"] = 0;
  m["migrations"] = 0;
  m["switches_to_local"] = 0;
  m["switches_to_remote"] = 0;
  m["fallbacks"] = 0;

  experiment::RunResult r;
  r.metrics = experiment::schema_metrics(s, m);
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  summary += fmt::format("  {:.1f} s wall; metrics the guests cannot observe are NaN\n", r.wall_s);
  r.summary = summary;
  return r;
}

} // namespace ivmc::guest_results
