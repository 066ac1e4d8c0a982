// See guest_results.hpp.
#include "guest_results.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <limits>
#include <map>
#include <stdexcept>

namespace ivmc::cli {
namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
} // namespace

double report_number(const posix::ReportFields& r, const char* key) {
  const auto it = r.find(key);
  if (it == r.end() || it->second.empty()) return kNaN;
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  return *end == '\0' ? v : kNaN;
}

bool is_request_response(const sim::WorkloadConfig& w) {
  return w.kind == "tcp_rr" || w.kind == "udp_rr";
}

bool through_channel(const sim::Scenario& s, const sim::WorkloadConfig& w) {
  auto host_of = [&](const std::string& vm) {
    for (const sim::VmConfig& v : s.vms)
      if (v.name == vm) return v.host;
    throw std::runtime_error("no VM named '" + vm + "'");
  };
  return s.channel.enabled && host_of(w.from) == host_of(w.to);
}

void refuse_unplayed_events(const sim::Scenario& s, bool ignore_events, const char* backend) {
  if (ignore_events || (s.events.empty() && s.generators.empty())) return;
  throw std::runtime_error(fmt::format(
      "{}: the {} backend plays no [[event]] or [[generator]] yet ({} events, {} generators: "
      "migrations, creation, shutdown); pass --ignore-events to run the workloads with the "
      "initial placement",
      s.origin, backend, s.events.size(), s.generators.size()));
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

sim::RunResult guest_results(const sim::Scenario& s,
                             const std::vector<GuestWorkloadOutcome>& outcomes, std::string summary,
                             std::chrono::steady_clock::time_point wall0) {
  std::map<std::string, double> m;
  double stream_mbps = 0, rr_tps = 0, data_rings = 0, wakeups = 0, sleeps = 0;
  double frames_local = 0, frames_remote = 0, channels = 0;
  for (std::size_t i = 0; i < outcomes.size() && i < s.workloads.size(); ++i) {
    const sim::WorkloadConfig& w = s.workloads[i];
    const posix::ReportFields& a = outcomes[i].from;
    const posix::ReportFields& b = outcomes[i].to;
    const bool local = outcomes[i].local;
    const bool rr = is_request_response(w);
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
    m[pre + "local_share"] = local ? 1 : 0;
    (local ? frames_local : frames_remote) += report_number(a, "messages");
    if (local) ++channels;
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
    summary += fmt::format("  {:<10} {:>6} -> {:<6} {:>7} B  {}  {}\n", w.kind, w.from, w.to,
                           w.message_bytes, line, local ? "channel" : "network");
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

  sim::RunResult r;
  for (const std::string& name : sim::metric_names(s)) {
    const auto it = m.find(name);
    r.metrics.push_back({name, it == m.end() ? kNaN : it->second});
  }
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  summary += fmt::format("  {:.1f} s wall; metrics the guests cannot observe are NaN\n", r.wall_s);
  r.summary = summary;
  return r;
}

} // namespace ivmc::cli
