// ivmc bench's report: one JSON object, or a table for people with the targets as ratios
// from the same run.
#include "ivmc/bench/bench.hpp"

#include <fmt/format.h>

#include <cmath>
#include <string>

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
                     "\"steal_share\": {}, \"speed\": \"{}\"}}",
                     x.transport, x.mode, x.size, number(x.gbps), number(x.msgs_per_s),
                     number(x.probe_rtt_ns), placement_json(x.measuring), placement_json(x.peer),
                     x.steal_share < 0 ? "null" : number(x.steal_share), x.speed);
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
        "\"near\": {}, \"runs_used\": {}, \"gbps_all\": {}, \"msgs_per_s_all\": {}}}",
        first ? "" : ", ", x.transport, x.mode, x.size, number(x.gbps), number(x.msgs_per_s),
        x.rtt_p50_ns ? number(*x.rtt_p50_ns) : std::string("null"), number(x.placement_rtt_ns),
        x.near ? "true" : "false", x.runs_used, number(x.gbps_all), number(x.msgs_per_s_all));
    first = false;
  }
  out += "], \"runs\": [";
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
  out +=
      fmt::format("ivmc bench: {}; ring {} KiB per direction\n", r.placement, r.ring_bytes / 1024);
  out += fmt::format("cache-line round trip p50 {:.0f} ns (fastest probe {:.0f} ns); raw eventfd "
                     "round trip p50 {:.0f} ns\n",
                     r.cacheline_rtt_ns, r.near_rtt_ns, r.eventfd_rtt_ns);
  out += r.iceoryx == "measured"
             ? std::string("iceoryx 2.0: measured (iox-roudi started and stopped by the bench)\n")
             : "iceoryx 2.0: " + r.iceoryx + "\n";
  out += "memcpy (one thread):";
  for (const auto& [size, gbps] : r.memcpy_gbps)
    out += fmt::format("  {} B {:.1f} GB/s", size, gbps);
  out += "\n\n";
  out += fmt::format("{:<6} {:<6} {:>8} {:>10} {:>14} {:>14} {:>18}\n", "path", "mode", "size",
                     "GB/s", "msg/s", "64 B RTT p50", "placement (runs)");
  for (const auto& x : r.results) {
    out += fmt::format(
        "{:<6} {:<6} {:>8} {:>10.3f} {:>14.0f} {:>14} {:>11.0f} ns {}{}\n", x.transport, x.mode,
        x.size, x.gbps, x.msgs_per_s, x.rtt_p50_ns ? fmt::format("{:.0f} ns", *x.rtt_p50_ns) : "",
        x.placement_rtt_ns, x.near ? "near" : "FAR", fmt::format("({})", x.runs_used));
  }
  // The targets, as ratios from this same run.
  out += fmt::format("\nratios from this run at near placement (cache line <= {:.0f} ns; "
                     "target in brackets):\n",
                     1.5 * r.near_rtt_ns);
  auto line = [&](const std::string& what, double v, const std::string& target) {
    out += fmt::format("  {:<52} {:>8.2f}x  [{}]\n", what, v, target);
  };
  // Throughput ratios: at near placement when both rows had near runs, and over all runs.
  auto ratio_line = [&](const std::string& what, std::string_view ta, std::string_view ma,
                        std::size_t sa, std::string_view tb, std::string_view mb, std::size_t sb,
                        bool msgs, double denominator_override, const std::string& target) {
    const auto* a = find(r, ta, ma, sa);
    const auto* b = tb.empty() ? nullptr : find(r, tb, mb, sb);
    if (!a || (!tb.empty() && !b)) return;
    auto value = [&](const TransportResult& x, bool all) {
      return msgs ? (all ? x.msgs_per_s_all : x.msgs_per_s) : (all ? x.gbps_all : x.gbps);
    };
    const double all = value(*a, true) / (b ? value(*b, true) : denominator_override);
    const bool near = a->near && (!b || b->near);
    const std::string near_text =
        near ? fmt::format("{:.2f}x",
                           value(*a, false) / (b ? value(*b, false) : denominator_override))
             : "n/a";
    out += fmt::format("  {:<52} {:>8}  all runs {:>7.2f}x  [{}]\n", what, near_text, all, target);
  };
  line("64 B polled RTT / cache-line RTT (paired rounds)", r.poll_rtt_ratio, "<= 2.0");
  if (r.iceoryx == "measured") {
    line("64 B polled RTT / iceoryx RTT (each over its cache line)",
         r.poll_rtt_ratio / r.iceoryx_rtt_ratio, "<= 1.0");
    ratio_line("64 B msg/s polled / iceoryx", "ring", "poll", 64, "iceoryx", "zero_copy", 64, true,
               1, ">= 1.0");
    ratio_line("64 KiB throughput polled / iceoryx", "ring", "poll", 65536, "iceoryx", "zero_copy",
               65536, false, 1, "");
  }
  if (r.memcpy_gbps.count(1u << 20)) {
    ratio_line("64 KiB polled throughput / memcpy of 1 MiB", "ring", "poll", 65536, "", "", 0,
               false, r.memcpy_gbps.at(1u << 20), ">= 0.5");
  }
  ratio_line("64 B msg/s / TCP loopback", "ring", "poll", 64, "tcp", "block", 64, true, 1,
             ">= 100");
  ratio_line("64 KiB throughput / TCP loopback", "ring", "poll", 65536, "tcp", "block", 65536,
             false, 1, ">= 8");
  line("blocking 64 B RTT / raw eventfd RTT (paired rounds)", r.block_rtt_ratio, "<= 1.15");
  return out;
}

} // namespace ivmc::bench
