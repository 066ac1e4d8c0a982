// Evidence that the simulator means what it says: measured race exposure against its closed
// form across scan periods; the surveyed systems' published directions reproduced by their
// presets; every preset runs. Each point runs in its own process through run_sweep (one
// SimGrid engine per process), exactly as `ivmc sweep` runs it.
#include "ivmc/experiment/load.hpp"
#include "ivmc/experiment/overrides.hpp"
#include "ivmc/experiment/presets.hpp"
#include "ivmc/sim/run.hpp"

#include "sweep_support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

using namespace ivmc;
using namespace ivmc::experiment;
using ivmc::test::num;
using ivmc::test::Rows;
using ivmc::test::sweep;

// docs/race-exposure.md derives it: a VM that migrates at the end time t_e learns of its own
// move at the next scan on its new host, t_e + W with W ~ U(0, T) when t_e is independent of
// the scan grid. Its sends form a Poisson process of rate lambda, so the number of sends in
// one window is Poisson(lambda W): mean lambda T / 2, variance lambda T / 2 + lambda^2 T^2 / 12.
TEST_CASE("periodic scanning: race exposure per migration matches lambda T / 2 across T",
          "[sim][evidence]") {
  const std::string text = R"(
name = "race-exposure"
duration_s = 30.0
[platform]
hosts = 2
migration_gbps = 10.0
[[vm]]
name = "a"
host = 0
ram_mib = 64
[[vm]]
name = "b"
host = 0
ram_mib = 64
[membership]
detection = "periodic"
race = "resolution"
[[workload]]
kind = "udp_stream"
from = "a"
to = "b"
message_bytes = 64
rate_per_s = 1000
arrivals = "poisson"
[[generator]]
kind = "migrate"
rate_per_s = 0.5
vms = ["a"]
)";
  const Scenario base = parse_scenario(text, "race-exposure");
  const double lambda = 1000;
  const std::vector<std::string> periods = {"20", "50", "100", "200"};
  const Rows rows = sweep("race", base, {{"membership.period_ms", periods}}, 3);
  REQUIRE(rows.size() == periods.size() * 3);
  for (const std::string& period : periods) {
    double in_window = 0, migrations = 0, probes = 0;
    for (const auto& row : rows) {
      if (row.at("membership.period_ms") != period) continue;
      in_window += num(row, "sends_in_race_window");
      migrations += num(row, "migrations");
      probes += num(row, "membership_probes");
    }
    REQUIRE(migrations >= 20); // enough windows for the interval below to mean something
    const double T = std::stod(period) / 1e3;
    const double expected = lambda * T / 2;
    const double var = lambda * T / 2 + lambda * lambda * T * T / 12;
    const double half_width = 3.3 * std::sqrt(var / migrations); // 99.9 %
    const double measured = in_window / migrations;
    std::printf("race exposure T=%s ms: %.2f sends/migration (closed form %.2f +- %.2f), "
                "%g migrations, %g probes\n",
                period.c_str(), measured, expected, half_width, migrations, probes);
    CHECK(std::abs(measured - expected) <= half_width);
  }
  // Fewer probes for longer periods: the other side of the trade-off.
  auto probes_at = [&](const std::string& p) {
    double n = 0;
    for (const auto& row : rows) {
      if (row.at("membership.period_ms") == p) n += num(row, "membership_probes");
    }
    return n;
  };
  CHECK(probes_at("20") > probes_at("200") * 5);
}

namespace {

// Mean (probes per second, race exposure) per value of `key` over a sweep's rows.
std::map<std::string, std::pair<double, double>> plane(const Rows& rows, const std::string& key,
                                                       double duration_s) {
  std::map<std::string, std::pair<double, double>> sum;
  std::map<std::string, int> n;
  for (const auto& row : rows) {
    auto& [p, e] = sum[row.at(key)];
    p += num(row, "membership_probes") / duration_s;
    e += num(row, "race_exposure");
    ++n[row.at(key)];
  }
  for (auto& [k, v] : sum) v = {v.first / n[k], v.second / n[k]};
  return sum;
}

// The fixed-period front's exposure at `probes` per second: log-log interpolation between the
// two fixed points around it (exposure x probes is about constant along the front).
double front_at(const std::map<std::string, std::pair<double, double>>& fixed, double probes) {
  std::vector<std::pair<double, double>> pts;
  for (const auto& [k, v] : fixed) pts.push_back({std::log(v.first), std::log(v.second)});
  std::sort(pts.begin(), pts.end());
  std::size_t i = 0;
  while (i + 2 < pts.size() && pts[i + 1].first < std::log(probes)) ++i;
  const double slope = (pts[i + 1].second - pts[i].second) / (pts[i + 1].first - pts[i].first);
  return std::exp(pts[i].second + slope * (std::log(probes) - pts[i].first));
}

} // namespace

// The adaptive update period (survey 3.6.1) against the front fixed periods trace on the
// exposure-against-probes plane. Under a rate that changes (a burst of migrations, then quiet:
// scenarios/examples/adaptive_burst.toml, shortened), the square-root law puts probes where the
// changes are and lies well beyond the front; under one steady rate no period policy can beat
// the front (every fixed period is on it), and the adaptive source must not fall behind it.
namespace {

// Adaptive exposure over the front's at the adaptive point's probe rate: `s` swept with
// periodic scanning at `periods`, then with adaptive scanning (3 seeds each).
double adaptive_over_front(const std::string& name, Scenario s, double duration_s,
                           const std::vector<std::string>& periods) {
  apply_override(s, "membership.detection=periodic");
  const auto fixed = plane(sweep(name + "-fixed", s, {{"membership.period_ms", periods}}, 3),
                           "membership.period_ms", duration_s);
  apply_override(s, "membership.detection=adaptive");
  const auto adaptive = plane(sweep(name + "-adaptive", s, {{"membership.period_ms", {"100"}}}, 3),
                              "membership.period_ms", duration_s);
  const auto [probes, exposure] = adaptive.at("100");
  const double front = front_at(fixed, probes);
  std::printf("adaptive, %s: %.1f probes/s, exposure %.5f; front there %.5f (%.2fx)\n",
              name.c_str(), probes, exposure, front, exposure / front);
  return exposure / front;
}

} // namespace

TEST_CASE("adaptive scanning lies on or beyond the fixed-period front", "[sim][evidence]") {
  const std::vector<std::string> periods = {"10", "20", "50", "100", "200", "500"};
  Scenario burst =
      load_scenario(std::string(IVMC_SOURCE_DIR) + "/scenarios/examples/adaptive_burst.toml");
  apply_override(burst, "duration_s=200");
  apply_override(burst, "generator[0].stop_s=50");
  apply_override(burst, "generator[1].start_s=50");
  apply_override(burst, "membership.rate_horizon_s=10");
  // measured 0.55-0.63x; the rule it replaced, 0.86x
  CHECK(adaptive_over_front("burst", burst, 200, periods) < 0.75);

  // One steady rate (race_exposure.toml at 5 migrations a second): on the front, within the
  // noise of three seeds.
  Scenario steady =
      load_scenario(std::string(IVMC_SOURCE_DIR) + "/scenarios/examples/race_exposure.toml");
  apply_override(steady, "duration_s=100");
  apply_override(steady, "generator.rate_per_s=5");
  // measured 1.01-1.02x; the rule it replaced, 1.14x
  CHECK(adaptive_over_front("steady", steady, 100, periods) < 1.08);
}

namespace {

// The example pair (scenarios/examples/xenloop_pair.toml: two co-resident VMs, one stream) with
// its platform, channel, membership and pool settings back at their defaults: a point that
// sets `preset` gets exactly that preset's choices.
Scenario plain_pair(const std::string& kind) {
  Scenario s =
      load_scenario(std::string(IVMC_SOURCE_DIR) + "/scenarios/examples/xenloop_pair.toml");
  s.platform = PlatformConfig{};
  s.channel = ChannelSettings{};
  s.membership = MembershipConfig{};
  s.pool = PoolSettings{};
  apply_override(s, "workload.kind=" + kind);
  return s;
}

// The pair over one preset.
Scenario two_vms(const std::string& preset, const std::string& kind) {
  Scenario s = plain_pair(kind);
  apply_override(s, "preset=" + preset);
  return s;
}

// Throughput by (message size, channel enabled) from a sweep.
std::map<std::pair<int, std::string>, double> by_size(const Rows& rows, const std::string& other) {
  std::map<std::pair<int, std::string>, double> out;
  for (const auto& row : rows) {
    out[{std::stoi(row.at("workload.message_bytes")), row.at(other)}] = num(row, "w0_mbps");
  }
  return out;
}

} // namespace

// XL-1. Both published measurements put XenLoop above netfront at every size. The survey's
// Fig. 3 (Zhang et al. 2013a) has the gain growing with the message size, steeply above 1 KB;
// XenLoop's own paper (Wang et al. 2008, Fig. 4) agrees from 1 KiB up (1.6x at 1 KiB, 4.9x at
// 4 KiB, 10x at 16 KiB) but has 4.2x at 64 B (42 against 10 Mb/s). So growth is checked from
// 1 KiB up, and 64 B only for a gain. With the calibrated defaults the model's 64 B gain is far
// larger than either (its small-message channel is too fast: docs/costs.md, "Calibration").
TEST_CASE("XenLoop: UDP_STREAM gain over netfront at every size, growing from 1 KiB up "
          "(survey Fig. 3, Wang et al. 2008 Fig. 4)",
          "[sim][evidence]") {
  const std::vector<std::string> sizes = {"64", "1024", "4096", "16384"};
  const Rows rows =
      sweep("xenloop-udp", two_vms("xenloop", "udp_stream"),
            {{"workload.message_bytes", sizes}, {"channel.enabled", {"true", "false"}}});
  auto t = by_size(rows, "channel.enabled");
  double last_gain = 0;
  for (const std::string& s : sizes) {
    const int m = std::stoi(s);
    const double gain = t[{m, "true"}] / t[{m, "false"}];
    std::printf("xenloop udp_stream %5d B: %.0f vs netfront %.0f Mb/s, gain %.2f\n", m,
                t[{m, "true"}], t[{m, "false"}], gain);
    CHECK(gain > 1); // XenLoop above netfront at every size
    if (m >= 1024) {
      CHECK(gain > last_gain); // grows with the message size from 1 KiB
      last_gain = gain;
    }
  }
  CHECK(last_gain > 1.1); // a gain for large messages (published: up to 6x and 10x)
}

// XL-4. The two published measurements disagree on the sign: the survey's Fig. 3 (Zhang et al.
// 2013a) has XenLoop's TCP_STREAM below netfront at every size, XenLoop's own Table 2 (Wang et
// al. 2008) has it at 1.56x netfront (4143 against 2656 Mb/s). The defaults are calibrated to
// the latter (docs/costs.md, "Calibration"), so "below netfront" is not checked; what both
// agree on is: TCP gains far less than UDP (Wang: 1.56x against 6.19x; survey: < 1 against up
// to 6x), because netfront sends TCP in TSO segments while a channel below IP sees MTU packets.
// And ATW recovers what per-packet notification costs (survey 3.3.4).
TEST_CASE("XenLoop: TCP_STREAM gains far less than UDP_STREAM over netfront with per-packet "
          "notification, and MemPipe's ATW batching recovers some of it (survey 3.3.4)",
          "[sim][evidence]") {
  const std::vector<std::string> sizes = {"1024", "4096", "16384"};
  Scenario base = two_vms("xenloop", "tcp_stream");
  const Rows rows = sweep("xenloop-tcp", base,
                          {{"workload.kind", {"tcp_stream", "udp_stream"}},
                           {"workload.message_bytes", sizes},
                           {"channel.notify", {"per_packet", "atw"}},
                           {"channel.enabled", {"true", "false"}}});
  std::map<std::tuple<std::string, int, std::string, std::string>, double> t, notes;
  for (const auto& row : rows) {
    const auto key =
        std::make_tuple(row.at("workload.kind"), std::stoi(row.at("workload.message_bytes")),
                        row.at("channel.notify"), row.at("channel.enabled"));
    t[key] = num(row, "w0_mbps");
    notes[key] = num(row, "data_notifications") / std::max(1.0, num(row, "sends"));
  }
  for (const std::string& s : sizes) {
    const int m = std::stoi(s);
    const std::string tcp = "tcp_stream", udp = "udp_stream";
    const double netfront = t[{tcp, m, "per_packet", "false"}];
    const double pnp = t[{tcp, m, "per_packet", "true"}], atw = t[{tcp, m, "atw", "true"}];
    const double udp_gain = t[{udp, m, "per_packet", "true"}] / t[{udp, m, "per_packet", "false"}];
    std::printf("xenloop tcp_stream %5d B: per-packet %.0f, atw %.0f, netfront %.0f Mb/s "
                "(gain %.2f, udp_stream %.2f); notifications per frame %.3f vs %.3f\n",
                m, pnp, atw, netfront, pnp / netfront, udp_gain,
                notes[{tcp, m, "per_packet", "true"}], notes[{tcp, m, "atw", "true"}]);
    CHECK(pnp / netfront < udp_gain); // TCP gains less than UDP
    CHECK(atw > 1.5 * pnp);           // batching notifications recovers much of it
    CHECK(notes[{tcp, m, "atw", "true"}] < notes[{tcp, m, "per_packet", "true"}] / 4);
  }
}

TEST_CASE("MemPipe: TCP_STREAM beats the KVM inter-VM path at every size (survey Fig. 4b)",
          "[sim][evidence]") {
  const std::vector<std::string> sizes = {"64", "1024", "4096", "16384"};
  const Rows rows =
      sweep("mempipe-tcp", two_vms("mempipe", "tcp_stream"),
            {{"workload.message_bytes", sizes}, {"channel.enabled", {"true", "false"}}});
  auto t = by_size(rows, "channel.enabled");
  for (const std::string& s : sizes) {
    const int m = std::stoi(s);
    std::printf("mempipe tcp_stream %5d B: %.0f vs kvm %.0f Mb/s\n", m, t[{m, "true"}],
                t[{m, "false"}]);
    CHECK(t[{m, "true"}] > t[{m, "false"}]);
  }
}

TEST_CASE("every preset runs over the default scenario", "[sim][evidence]") {
  std::vector<std::string> names;
  for (const auto& p : presets()) names.push_back(p.name);
  REQUIRE(names.size() >= 12);
  const Scenario base = parse_scenario(default_scenario_text(), "default");
  const Rows rows = sweep("presets", base, {{"preset", names}});
  REQUIRE(rows.size() == names.size());
  for (const auto& row : rows) {
    INFO(row.at("preset"));
    CHECK(num(row, "rr_transactions_per_s") > 0);
    CHECK(num(row, "stream_mbps") > 0);
    CHECK(num(row, "lost_bytes") >= 0);
  }
}

// Every preset against its own hypervisor path, in the direction its published results give
// (docs/presets.md, "Published results to reproduce"; the gains are far smaller than the
// published ones: docs/costs.md).
TEST_CASE("each preset reproduces the direction of its published results", "[sim][evidence]") {
  std::vector<std::string> names;
  for (const auto& p : presets()) names.push_back(p.name);
  const Scenario pair = plain_pair("tcp_stream"); // each point applies its preset
  const Rows streams = sweep("preset-streams", pair,
                             {{"preset", names},
                              {"workload.kind", {"tcp_stream", "udp_stream"}},
                              {"workload.message_bytes", {"16384"}},
                              {"channel.enabled", {"true", "false"}}});
  const Rows rr = sweep("preset-rr", pair,
                        {{"preset", names},
                         {"workload.kind", {"tcp_rr"}},
                         {"workload.message_bytes", {"64"}},
                         {"channel.enabled", {"true", "false"}}});
  // gain[preset][kind] = channel / hypervisor path
  std::map<std::string, std::map<std::string, double>> gain, value;
  for (const Rows* rows : {&streams, &rr}) {
    for (const auto& row : *rows) {
      const std::string kind = row.at("workload.kind");
      const double v = kind == "tcp_rr" ? num(row, "w0_transactions_per_s") : num(row, "w0_mbps");
      value[row.at("preset") + "/" + row.at("channel.enabled")][kind] = v;
    }
  }
  std::printf(
      "| preset | TCP_STREAM 16 KiB | UDP_STREAM 16 KiB | TCP_RR 64 B |\n|---|---|---|---|\n");
  for (const std::string& p : names) {
    for (const char* kind : {"tcp_stream", "udp_stream", "tcp_rr"}) {
      gain[p][kind] = value[p + "/true"][kind] / value[p + "/false"][kind];
    }
    std::printf("| %s | %.2fx | %.2fx | %.2fx |\n", p.c_str(), gain[p]["tcp_stream"],
                gain[p]["udp_stream"], gain[p]["tcp_rr"]);
  }
  // Directions (docs/presets.md ids in brackets).
  CHECK(gain["xenloop"]["udp_stream"] > 1); // XL-1
  // XL-4: below the UDP gain, and at most Wang et al. 2008's 1.56x (the survey's Fig. 3 has < 1;
  // see the XenLoop TCP_STREAM test case above).
  CHECK(gain["xenloop"]["tcp_stream"] < gain["xenloop"]["udp_stream"]);
  CHECK(gain["xenloop"]["tcp_stream"] < 1.56);
  CHECK(gain["xenloop"]["tcp_rr"] > 1);                                     // XL-2
  CHECK(gain["mmnet"]["udp_stream"] > 1);                                   // MM-2
  CHECK(gain["mmnet"]["tcp_stream"] > 1.5 * gain["xenloop"]["tcp_stream"]); // MM-1: ~2x XenLoop
  CHECK(gain["mempipe"]["tcp_stream"] > 1);                                 // MP-1/2
  CHECK(gain["mempipe"]["udp_stream"] > 1);
  CHECK(gain["mempipe"]["tcp_rr"] > 1);                // Table IX: RR too
  CHECK(gain["xenvmc"]["tcp_stream"] > 1);             // up to 9x
  CHECK(gain["xenvmc"]["tcp_rr"] > 1);                 // latency up to 6x lower
  CHECK(gain["xensocket"]["tcp_rr"] > 1);              // up to 72x
  CHECK(gain["xway"]["tcp_stream"] > 1);               // beats native TCP
  CHECK(gain["socket_outsourcing"]["tcp_stream"] > 1); // up to 25x
  CHECK(gain["ivcom"]["tcp_stream"] > 1);              // up to 3x
  CHECK(gain["ivcom"]["tcp_rr"] > 1);                  // RTT -70 %
  CHECK(gain["hv2m"]["udp_stream"] > 1);               // better delay, throughput
  CHECK(gain["hv2m"]["tcp_rr"] > 1);
  CHECK(gain["nahanni"]["tcp_stream"] > 1); // 20-80 % faster apps
  CHECK(gain["vmpi"]["tcp_rr"] > 1);        // near native MPI
  CHECK(gain["ivc"]["tcp_stream"] > 1);     // near native MPI
  // The layer ordering of survey 3.3: socket level ahead of below IP on the same platform.
  CHECK(gain["xenvmc"]["tcp_rr"] > gain["xenloop"]["tcp_rr"]);
}

// Presets that share a layer and a hypervisor still differ where their systems differ
// (docs/presets.md, summary table): XWAY carries TCP only (survey 8.1), XenVMC learns of a
// co-resident VM by a watch, IVCOM (detection not stated) by the default periodic scan and XWAY
// never (a static file, no migration: Table V); HV2M runs Xen HVM guests (seed 004), whose
// notifications and interrupts pay VM exits, and MMNet maps its peer's memory (one copy,
// Table III). Each difference must show in a run that exercises it.
TEST_CASE("presets differ where their systems differ", "[sim][evidence]") {
  // Plain pair, both on host 0: protocol, copies and PV against HVM. (Streams and RR have
  // different result columns, so two sweeps.)
  const std::vector<std::string> names = {"xway", "xenvmc", "ivcom", "mmnet", "hv2m"};
  const Rows streams = sweep("preset-differ", plain_pair("tcp_stream"),
                             {{"preset", names},
                              {"workload.kind", {"tcp_stream", "udp_stream"}},
                              {"workload.message_bytes", {"16384"}},
                              {"channel.enabled", {"true", "false"}}});
  const Rows rr = sweep("preset-differ-rr", plain_pair("tcp_rr"),
                        {{"preset", names},
                         {"workload.message_bytes", {"64"}},
                         {"channel.enabled", {"true", "false"}}});
  std::map<std::string, double> v, share; // "preset/kind/enabled"
  for (const Rows* rows : {&streams, &rr}) {
    for (const auto& row : *rows) {
      const std::string kind = rows == &rr ? "tcp_rr" : row.at("workload.kind");
      const std::string key = row.at("preset") + "/" + kind + "/" + row.at("channel.enabled");
      v[key] = kind == "tcp_rr" ? num(row, "w0_transactions_per_s") : num(row, "w0_mbps");
      share[key] = num(row, "w0_local_share");
    }
  }
  for (const auto& [k, x] : v)
    std::printf("differ %-28s %10.1f (local %.2f)\n", k.c_str(), x, share[k]);
  // XWAY: UDP stays on netfront (same throughput as without the channel); XenVMC takes it.
  CHECK(share["xway/udp_stream/true"] == 0);
  CHECK(v["xway/udp_stream/true"] == Approx(v["xway/udp_stream/false"]).epsilon(0.02));
  CHECK(share["xenvmc/udp_stream/true"] > 0.9);
  CHECK(v["xenvmc/udp_stream/true"] > 2 * v["xway/udp_stream/true"]);
  CHECK(share["xway/tcp_stream/true"] > 0.9); // TCP still does
  // HV2M's HVM guests pay a VM exit per notification and interrupt, which MMNet's PV guests
  // do not: its transactions are slower on the front-back path (the baseline) and on the
  // channel, and still ahead of its own baseline (seed 004: better delay and throughput).
  // Streams are bound by Dom0 (baseline) and the receiver's stack (channel), so the exits do not
  // show there.
  CHECK(v["hv2m/tcp_rr/false"] < 0.95 * v["mmnet/tcp_rr/false"]);
  CHECK(v["hv2m/tcp_rr/true"] < 0.95 * v["mmnet/tcp_rr/true"]);
  for (const char* kind : {"tcp_stream", "udp_stream", "tcp_rr"}) {
    INFO(kind);
    const std::string k = kind;
    CHECK(v["hv2m/" + k + "/true"] > v["hv2m/" + k + "/false"]);
  }

  // Detection: VM a migrates to b's host at 50 ms; how soon its stream moves to the channel.
  Scenario mig = plain_pair("tcp_stream");
  for (const char* o : {"duration_s=0.6", "vm[0].host=1", "vm[0].ram_mib=64", "vm[1].ram_mib=64",
                        "workload.message_bytes=16384"}) {
    apply_override(mig, o);
  }
  EventConfig e;
  e.kind = EventKind::migrate;
  e.at_s = 0.05;
  e.vm = mig.vms[0].name;
  e.host = 0;
  mig.events = {e};
  const Rows moved = sweep("preset-detect", mig, {{"preset", {"xway", "xenvmc", "ivcom"}}});
  std::map<std::string, double> local;
  for (const auto& row : moved) {
    local[row.at("preset")] = num(row, "w0_local_share");
    std::printf("after a migration in: %-7s local %.3f, %.0f Mb/s\n", row.at("preset").c_str(),
                local[row.at("preset")], num(row, "w0_mbps"));
  }
  CHECK(local["xway"] == 0);               // static: never switches (Table V)
  CHECK(local["ivcom"] > 0.5);             // the periodic scan finds it
  CHECK(local["xenvmc"] > local["ivcom"]); // a watch (1 ms) finds it sooner than a 100 ms scan
}
