// ivmc bench's report: one JSON object, or a table for people with the targets as ratios
// from the same run.
#include "ivmc/bench/bench.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ivmc::bench {
namespace {

const TransportResult* find(const BenchReport& r, std::string_view transport, std::string_view mode,
                            std::size_t size) {
  for (const auto& x : r.results) {
    if (x.transport == transport && x.mode == mode && x.size == size) return &x;
  }
  return nullptr;
}

std::string json_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
      continue;
    }
    out += c;
  }
  return out;
}

std::string number(double v) {
  if (!std::isfinite(v)) return "null";
  return fmt::format("{:.6g}", v);
}

std::string placement_json(const ProcessPlacement& p) {
  return fmt::format("{{\"cpu_start\": {}, \"cpu_end\": {}, \"cpu_share\": {}, "
                     "\"wait_share\": {}, \"involuntary_switches\": {}}}",
                     p.cpu_start, p.cpu_end, number(p.cpu_share), number(p.wait_share),
                     p.involuntary);
}

std::string load_json(const double (&load)[3]) {
  return fmt::format("[{}, {}, {}]", number(load[0]), number(load[1]), number(load[2]));
}

std::string machine_json(const MachineReport& m) {
  std::string out = fmt::format(
      "{{\"model_name\": \"{}\", \"hypervisor\": \"{}\", \"online_cpus\": {}, "
      "\"topology\": \"{}\", \"load_start\": {}, \"load_end\": {}, \"steal_share\": {}, "
      "\"cpus\": [",
      json_escape(m.model_name), json_escape(m.hypervisor), m.online_cpus, json_escape(m.topology),
      load_json(m.load_start), load_json(m.load_end),
      m.steal_share < 0 ? "null" : number(m.steal_share));
  bool first = true;
  for (const CpuDescription& c : m.cpus) {
    out += fmt::format(
        "{}{{\"cpu\": {}, \"core_id\": {}, \"package_id\": {}, \"core_siblings\": \"{}\", "
        "\"l2_shared\": \"{}\", \"l2_size\": \"{}\", \"llc_shared\": \"{}\", "
        "\"llc_size\": \"{}\", \"reported_mhz\": {}, \"measured_ghz_start\": {}, "
        "\"measured_ghz_end\": {}}}",
        first ? "" : ", ", c.cpu, c.core_id, c.package_id, c.core_siblings, c.l2_shared, c.l2_size,
        c.llc_shared, c.llc_size, number(c.reported_mhz), number(c.measured_ghz_start),
        number(c.measured_ghz_end));
    first = false;
  }
  return out + "]}";
}

std::string run_json(const RunRecord& x) {
  return fmt::format("{{\"transport\": \"{}\", \"mode\": \"{}\", \"size\": {}, \"gbps\": {}, "
                     "\"msgs_per_s\": {}, \"probe_rtt_ns\": {}, \"measuring\": {}, \"peer\": {}, "
                     "\"steal_share\": {}, \"speed\": \"{}\", \"placement\": \"{}\"}}",
                     x.transport, x.mode, x.size, number(x.gbps), number(x.msgs_per_s),
                     number(x.probe_rtt_ns), placement_json(x.measuring), placement_json(x.peer),
                     x.steal_share < 0 ? "null" : number(x.steal_share), x.speed,
                     x.near ? "near" : "far");
}

// One target of the issue as a ratio between figures of this run.
struct Ratio {
  std::string key, label;
  std::optional<double> value; // from the rows' selected runs (full CPUs, near placement)
  std::optional<double> all;   // from all runs (throughput ratios only)
  std::string target;          // "" when the ratio is only context
};

std::vector<Ratio> ratios(const BenchReport& r) {
  std::vector<Ratio> out;
  const bool iceoryx = r.iceoryx == "measured";
  auto rtt = [&](std::string key, std::string label, double v, std::string target) {
    out.push_back({std::move(key), std::move(label), v, std::nullopt, std::move(target)});
  };
  auto rows = [&](std::string key, std::string label, std::string_view ta, std::string_view ma,
                  std::size_t sa, std::string_view tb, std::string_view mb, std::size_t sb,
                  bool msgs, std::string target) {
    const auto* a = find(r, ta, ma, sa);
    const auto* b = find(r, tb, mb, sb);
    if (!a || !b) return;
    auto value = [&](const TransportResult& x, bool all) {
      return msgs ? (all ? x.msgs_per_s_all : x.msgs_per_s) : (all ? x.gbps_all : x.gbps);
    };
    out.push_back({std::move(key), std::move(label), value(*a, false) / value(*b, false),
                   value(*a, true) / value(*b, true), std::move(target)});
  };
  auto over_memcpy = [&](std::string key, std::string label, std::string_view mode,
                         std::string target) {
    const auto* a = find(r, "ring", mode, 65536);
    if (!a || !r.memcpy_gbps.count(1u << 20)) return;
    const double m = r.memcpy_gbps.at(1u << 20);
    out.push_back(
        {std::move(key), std::move(label), a->gbps / m, a->gbps_all / m, std::move(target)});
  };
  rtt("poll_rtt_over_cacheline", "64 B polled RTT / cache-line RTT", r.poll_rtt_ratio, "");
  for (const auto& [size, ratio] : r.poll_small_rtt_ratio) {
    rtt(fmt::format("poll_rtt_{}_over_cacheline", size),
        fmt::format("{} B polled RTT / cache-line RTT", size), ratio, "<= 2.0");
  }
  rtt("poll_rtt_over_bare", "64 B polled RTT / bare two-line ring RTT", r.poll_over_bare_rtt_ratio,
      "<= 1.1");
  rtt("bare_rtt_over_cacheline", "64 B bare ring RTT / cache-line RTT", r.bare_rtt_ratio, "");
  rtt("crc_rtt_over_poll", "64 B polled RTT, CRC32C on / off", r.crc_rtt_ns / r.poll_rtt_ns, "");
  rtt("zero_copy_rtt_over_cacheline", "64 B zero-copy RTT / cache-line RTT", r.zero_copy_rtt_ratio,
      "");
  if (iceoryx) {
    rtt("iceoryx_rtt_over_cacheline", "64 B iceoryx RTT / cache-line RTT", r.iceoryx_rtt_ratio, "");
    rtt("poll_rtt_over_iceoryx", "64 B polled RTT / iceoryx RTT",
        r.poll_rtt_ratio / r.iceoryx_rtt_ratio, "<= 1.0");
    rows("poll_msgs_64_over_iceoryx", "64 B msg/s, polled / iceoryx", "ring", "poll", 64, "iceoryx",
         "zero_copy", 64, true, ">= 1.0");
    rows("zero_copy_gbps_64k_over_iceoryx", "64 KiB GB/s, zero-copy / iceoryx", "ring", "zero_copy",
         65536, "iceoryx", "zero_copy", 65536, false, ">= 1.0");
  }
  over_memcpy("poll_gbps_64k_over_memcpy_1m", "64 KiB GB/s, polled (copying) / memcpy 1 MiB",
              "poll", ">= 0.5");
  over_memcpy("zero_copy_gbps_64k_over_memcpy_1m", "64 KiB GB/s, zero-copy / memcpy 1 MiB",
              "zero_copy", "");
  rows("crc_gbps_64k_over_poll", "64 KiB GB/s, polled with CRC32C / without", "ring", "poll_crc",
       65536, "ring", "poll", 65536, false, "");
  rows("crc_msgs_64_over_poll", "64 B msg/s, polled with CRC32C / without", "ring", "poll_crc", 64,
       "ring", "poll", 64, true, "");
  rows("zero_copy_gbps_64k_over_poll", "64 KiB GB/s, zero-copy / polled (copying)", "ring",
       "zero_copy", 65536, "ring", "poll", 65536, false, "");
  rows("poll_msgs_64_over_tcp", "64 B msg/s, polled / TCP loopback", "ring", "poll", 64, "tcp",
       "block", 64, true, ">= 100");
  rows("poll_gbps_64k_over_tcp", "64 KiB GB/s, polled / TCP loopback", "ring", "poll", 65536, "tcp",
       "block", 65536, false, ">= 8");
  rtt("block_rtt_over_eventfd", "blocking 64 B RTT / raw eventfd RTT", r.block_rtt_ratio,
      "<= 1.15");
  return out;
}

std::string optional_number(const std::optional<double>& v) {
  return v ? number(*v) : "null";
}

} // namespace

// JSON by hand: the schema is small and fixed, and no JSON library is among our dependencies.
std::string to_json(const BenchReport& r) {
  std::string out = "{";
  out += fmt::format("\"placement\": \"{}\", ", r.placement);
  out += fmt::format("\"ring_bytes\": {}, ", r.ring_bytes);
  out += fmt::format("\"cacheline_rtt_ns\": {}, ", number(r.cacheline_rtt_ns));
  out += fmt::format("\"near_rtt_ns\": {}, ", number(r.near_rtt_ns));
  out += fmt::format("\"eventfd_rtt_ns\": {}, ", number(r.eventfd_rtt_ns));
  out += fmt::format("\"poll_rtt_ratio\": {}, ", number(r.poll_rtt_ratio));
  out += fmt::format("\"block_rtt_ratio\": {}, ", number(r.block_rtt_ratio));
  out += fmt::format("\"iceoryx\": \"{}\", ", json_escape(r.iceoryx));
  out += fmt::format("\"iceoryx_rtt_ratio\": {}, ",
                     r.iceoryx == "measured" ? number(r.iceoryx_rtt_ratio) : "null");
  out += fmt::format("\"zero_copy_rtt_ratio\": {}, ", number(r.zero_copy_rtt_ratio));
  out += "\"poll_small_rtt_ratio\": {";
  for (const auto& [size, ratio] : r.poll_small_rtt_ratio) {
    out += fmt::format("{}\"{}\": {}", size == r.poll_small_rtt_ratio.begin()->first ? "" : ", ",
                       size, number(ratio));
  }
  out += "}, ";
  out += fmt::format("\"crc_rtt_ratio\": {}, ", number(r.crc_rtt_ratio));
  out += fmt::format("\"bare_rtt_ns\": {}, ", number(r.bare_rtt_ns));
  out += fmt::format("\"poll_over_bare_rtt_ratio\": {}, ", number(r.poll_over_bare_rtt_ratio));
  out += fmt::format("\"bare_rtt_ratio\": {}, ", number(r.bare_rtt_ratio));
  out += "\"poll_gbps_64k_over_memcpy_1m_by_mode\": {";
  for (const auto& [mode, ratio] : r.poll_64k_over_memcpy_by_mode) {
    out += fmt::format("{}\"{}\": {}",
                       mode == r.poll_64k_over_memcpy_by_mode.begin()->first ? "" : ", ", mode,
                       number(ratio));
  }
  out += "}, ";
  out += fmt::format("\"machine\": {}, ", machine_json(r.machine));
  out += "\"memcpy_gbps\": {";
  bool first = true;
  for (const auto& [size, gbps] : r.memcpy_gbps) {
    out += fmt::format("{}\"{}\": {}", first ? "" : ", ", size, number(gbps));
    first = false;
  }
  out += "}, \"results\": [";
  first = true;
  for (const auto& x : r.results) {
    out += fmt::format(
        "{}{{\"transport\": \"{}\", \"mode\": \"{}\", \"size\": {}, \"gbps\": {}, "
        "\"msgs_per_s\": {}, \"rtt_p50_ns\": {}, \"placement_rtt_ns\": {}, "
        "\"near\": {}, \"full\": {}, \"wait_share\": {}, \"runs_used\": {}, "
        "\"runs_full\": {}, \"runs\": {}, \"gbps_all\": {}, \"msgs_per_s_all\": {}}}",
        first ? "" : ", ", x.transport, x.mode, x.size, number(x.gbps), number(x.msgs_per_s),
        x.rtt_p50_ns ? number(*x.rtt_p50_ns) : std::string("null"), number(x.placement_rtt_ns),
        x.near ? "true" : "false", x.full ? "true" : "false", number(x.wait_share), x.runs_used,
        x.runs_full, x.runs, number(x.gbps_all), number(x.msgs_per_s_all));
    first = false;
  }
  out += "], \"ratios\": {";
  first = true;
  for (const Ratio& x : ratios(r)) {
    out += fmt::format("{}\"{}\": {{\"value\": {}, \"all_runs\": {}, \"target\": \"{}\"}}",
                       first ? "" : ", ", x.key, optional_number(x.value), optional_number(x.all),
                       json_escape(x.target));
    first = false;
  }
  out += "}, \"runs\": [";
  first = true;
  for (const auto& x : r.runs) {
    out += (first ? "" : ", ") + run_json(x);
    first = false;
  }
  out += fmt::format("], \"wall_seconds\": {}}}", number(r.wall_seconds));
  return out;
}

std::string to_table(const BenchReport& r) {
  std::string out;
  const MachineReport& m = r.machine;
  out +=
      fmt::format("ivmc bench: {}; ring {} KiB per direction\n", r.placement, r.ring_bytes / 1024);
  out += fmt::format("machine: {}{}, {} CPUs online\n", m.model_name,
                     m.hypervisor.empty() ? "" : " (" + m.hypervisor + " guest)", m.online_cpus);
  if (!m.topology.empty()) out += "  " + m.topology + "\n";
  for (const CpuDescription& c : m.cpus) {
    out += fmt::format("  CPU {}: core clock measured {:.2f} GHz at the start, {:.2f} GHz at the "
                       "end (reported {:.0f} MHz)\n",
                       c.cpu, c.measured_ghz_start, c.measured_ghz_end, c.reported_mhz);
  }
  out += fmt::format("  load average {:.2f} at the start, {:.2f} at the end; host steal on the "
                     "two CPUs {}\n",
                     m.load_start[0], m.load_end[0],
                     m.steal_share < 0 ? std::string("unreadable")
                                       : fmt::format("{:.1f} % of the run", 100 * m.steal_share));
  int full = 0;
  std::vector<double> shared_waits;
  for (const RunRecord& x : r.runs) {
    if (x.speed == "full") {
      ++full;
    } else {
      shared_waits.push_back(std::max(x.measuring.wait_share, x.peer.wait_share));
    }
  }
  std::vector<double> sorted = shared_waits;
  std::sort(sorted.begin(), sorted.end());
  out += fmt::format("speed modes: {} of {} throughput runs had both CPUs to themselves (full){}\n",
                     full, r.runs.size(),
                     sorted.empty()
                         ? std::string()
                         : fmt::format("; {} shared a CPU with other processes or the host "
                                       "(median wait {:.0f} % of the run): slower, and not used "
                                       "where full runs exist",
                                       sorted.size(), 100 * sorted[sorted.size() / 2]));
  std::map<std::string, int> by_mode;
  for (const RunRecord& x : r.runs) ++by_mode[x.speed + (x.near ? "/near" : "/far")];
  out += "  throughput runs by speed mode (speed/placement):";
  for (const auto& [mode, n] : by_mode) out += fmt::format(" {} {}", mode, n);
  out += "\n";
  for (const auto& [mode, ratio] : r.poll_64k_over_memcpy_by_mode) {
    out += fmt::format("  64 KiB polled (copying) / memcpy 1 MiB in {} runs: {:.2f}x [>= 0.5]\n",
                       mode, ratio);
  }
  out += fmt::format("cache-line round trip p50 {:.0f} ns (fastest probe {:.0f} ns); raw eventfd "
                     "round trip p50 {:.0f} ns\n",
                     r.cacheline_rtt_ns, r.near_rtt_ns, r.eventfd_rtt_ns);
  out += fmt::format("bare two-line ring (the floor for the channel's 64 B records) round trip "
                     "p50 {:.0f} ns, polled channel {:.0f} ns, same rounds\n",
                     r.bare_rtt_ns, r.poll_rtt_ns);
  out += r.iceoryx == "measured"
             ? std::string("iceoryx 2.0: measured (iox-roudi started and stopped by the bench)\n")
             : "iceoryx 2.0: " + r.iceoryx + "\n";
  out += "memcpy (one thread):";
  for (const auto& [size, gbps] : r.memcpy_gbps)
    out += fmt::format("  {} B {:.1f} GB/s", size, gbps);
  out += "\n\n";
  out += fmt::format("{:<8} {:<10} {:>6} {:>8} {:>12} {:>10} {:>14} {:>22}\n", "path", "mode",
                     "size", "GB/s", "msg/s", "64 B RTT", "probe (near?)", "CPUs (runs used/all)");
  for (const auto& x : r.results) {
    const std::string cpus = x.full ? fmt::format("full ({}/{})", x.runs_used, x.runs)
                                    : fmt::format("SHARED, wait {:.0f}% ({}/{})",
                                                  100 * x.wait_share, x.runs_used, x.runs);
    out += fmt::format("{:<8} {:<10} {:>6} {:>8.3f} {:>12.0f} {:>10} {:>8.0f} ns {:<4} {:>22}\n",
                       x.transport, x.mode, x.size, x.gbps, x.msgs_per_s,
                       x.rtt_p50_ns ? fmt::format("{:.0f} ns", *x.rtt_p50_ns) : "",
                       x.placement_rtt_ns, x.near ? "near" : "FAR", cpus);
  }
  out += fmt::format("\nratios from this run (rows: runs with full CPUs at near placement, cache "
                     "line <= {:.0f} ns; RTTs: paired rounds; target in brackets):\n",
                     1.5 * r.near_rtt_ns);
  for (const Ratio& x : ratios(r)) {
    out += fmt::format("  {:<46} {:>8}", x.label,
                       x.value ? fmt::format("{:.2f}x", *x.value) : std::string("n/a"));
    out += x.all ? fmt::format("  all runs {:>7.2f}x", *x.all) : std::string(19, ' ');
    out += x.target.empty() ? "\n" : fmt::format("  [{}]\n", x.target);
  }
  return out;
}

} // namespace ivmc::bench
