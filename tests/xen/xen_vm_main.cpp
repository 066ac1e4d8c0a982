// The Xen vm tests: one boot of Xen under QEMU TCG runs every scenario (a boot costs over a
// minute), and each scenario is then checked from the console log as its own ctest test.
//
//   xen_vm_harness boot --image DIR --log FILE [--bytes N] [--count N] [--kill N]
//       boots the image (dom0's /init runs the programme in backends/xen/guest/dom0-init),
//       keeps the console in FILE, prints the figures (VM-FIGURE lines); exit 0 once dom0 ran
//       its programme (the checks judge it, programme_completed whether it ended well). Exit 77
//       (skip), with the reason also written to FILE.skip, when qemu-system-x86_64 or the image
//       is missing.
//   xen_vm_harness check NAME --log FILE
//       checks one scenario's lines in FILE; exit 77 when the boot was skipped.
//   xen_vm_harness ivmc-run --ivmc BIN --scenario FILE --image DIR --out DIR
//       `ivmc run FILE --backend xen` as a user runs it (its own boot), checked against the
//       simulation of the same scenario: the same results.csv columns, which pairs took the
//       ring, the figures; exit 77 when the image or QEMU is missing.
#include "ivmc/experiment/results.hpp"
#include "ivmc/posix/qemu_process.hpp"
#include "ivmc/posix/workload.hpp"
#include "ivmc/xen/xen_qemu.hpp"

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace ivmc;

namespace {

constexpr int kSkip = 77;

int skip(const std::string& log, const std::string& why) {
  std::printf("SKIP: %s\n", why.c_str());
  std::ofstream(log + ".skip") << why << "\n";
  return kSkip;
}

// The console's IVMC-RESULT lines, each with the domU it ran against ("domu").
struct Run {
  std::vector<posix::ReportFields> results;
  std::map<std::string, std::string> sizes;                   // IVMC-SIZES bytes= count= kill=
  std::map<std::string, std::string> domids;                  // domU name -> domid
  std::vector<std::map<std::string, std::string>> membership; // IVMC-MEMBERSHIP lines' fields
};

Run parse_console(const std::string& console) {
  Run run;
  std::istringstream in(console);
  std::string domu = "?";
  for (std::string line; std::getline(in, line);) {
    if (const std::size_t at = line.find("IVMC-STEP created "); at != std::string::npos) {
      std::istringstream words(line.substr(at + 18));
      std::string id;
      words >> domu >> id;
      if (id.rfind("domid=", 0) == 0) run.domids[domu] = id.substr(6);
    } else if (const std::size_t at2 = line.find("IVMC-SIZES "); at2 != std::string::npos) {
      std::istringstream words(line.substr(at2 + 11));
      for (std::string w; words >> w;)
        if (const std::size_t eq = w.find('='); eq != std::string::npos)
          run.sizes[w.substr(0, eq)] = w.substr(eq + 1);
    } else if (const std::size_t at3 = line.find("IVMC-MEMBERSHIP "); at3 != std::string::npos) {
      std::istringstream words(line.substr(at3 + 16));
      std::map<std::string, std::string> fields;
      for (std::string w; words >> w;)
        if (const std::size_t eq = w.find('='); eq != std::string::npos)
          fields[w.substr(0, eq)] = w.substr(eq + 1);
      run.membership.push_back(std::move(fields));
    } else if (auto fields = posix::parse_report(line)) {
      (*fields)["domu"] = domu;
      run.results.push_back(std::move(*fields));
    }
  }
  return run;
}

std::string get(const posix::ReportFields& f, const std::string& key) {
  const auto it = f.find(key);
  return it == f.end() ? std::string() : it->second;
}
std::uint64_t number(const posix::ReportFields& f, const std::string& key) {
  const std::string v = get(f, key);
  return v.empty() ? 0 : std::stoull(v);
}

// The first result of `kind` against `domu` (with `policy`, and `mode` if given).
const posix::ReportFields* find(const Run& run, const std::string& domu, const std::string& kind,
                                const std::string& policy = "", const std::string& mode = "") {
  for (const auto& f : run.results)
    if (get(f, "domu") == domu && get(f, "kind") == kind &&
        (policy.empty() || get(f, "policy") == policy) && (mode.empty() || get(f, "mode") == mode))
      return &f;
  return nullptr;
}

// The membership line of `source` reporting `change` of `domid`, if any.
const std::map<std::string, std::string>* membership(const Run& run, const std::string& source,
                                                     const std::string& change,
                                                     const std::string& domid) {
  for (const auto& m : run.membership) {
    auto at = [&](const char* k) { return m.count(k) ? m.at(k) : std::string(); };
    if (at("source") == source && at("change") == change && at("domid") == domid) return &m;
  }
  return nullptr;
}

// Milliseconds from the destroy of domU b (dom0's kill command) to `source`'s notice, or -1.
double membership_delay_ms(const Run& run, const std::string& source) {
  const posix::ReportFields* kill = find(run, "b", "stream", "", "recv-kill");
  if (!kill || !run.domids.count("b")) return -1;
  const auto* m = membership(run, source, "shutdown", run.domids.at("b"));
  if (!m || !m->count("t_ns")) return -1;
  return (std::stod(m->at("t_ns")) - std::stod(get(*kill, "from_ns"))) / 1e6;
}

std::string hex16(std::uint64_t v) {
  char text[20];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(v));
  return text;
}

// Failures collected by one check, printed at the end.
struct Checker {
  std::vector<std::string> failures;
  void expect(bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "  ok  " : "  FAIL", what.c_str());
    if (!ok) failures.push_back(what);
  }
  // A stream's receiver result: ok, all bytes, the stream's checksum.
  void stream(const posix::ReportFields* f, const std::string& name, std::uint64_t bytes) {
    expect(f != nullptr, name + ": a result line");
    if (!f) return;
    expect(get(*f, "ok") == "1", name + ": ok=1 (error: " + get(*f, "error") + ")");
    expect(number(*f, "bytes") == bytes,
           name + ": bytes=" + get(*f, "bytes") + " of " + std::to_string(bytes));
    expect(get(*f, "checksum") == hex16(posix::expected_checksum(bytes)),
           name + ": checksum " + get(*f, "checksum") + " is the stream's");
  }
  // A stream whose sender died: peer_dead, an intact prefix holding all it had reported sent,
  // noticed in bounded time, and the platform's reason names the mechanism (`because`).
  void death(const posix::ReportFields* f, const std::string& name, const std::string& because) {
    expect(f != nullptr, name + ": a result line");
    if (!f) return;
    expect(get(*f, "ok") == "1", name + ": ok=1 (error: " + get(*f, "error") + ")");
    expect(get(*f, "end") == "peer_dead",
           name + ": the channel ended with peer_dead: " + get(*f, "end"));
    expect(get(*f, "prefix_ok") == "1", name + ": what arrived is an intact prefix of the stream");
    expect(number(*f, "bytes") >= number(*f, "sent_snapshot"),
           name + ": everything the sender had reported sent arrived (" + get(*f, "bytes") +
               " >= " + get(*f, "sent_snapshot") + ")");
    const std::string ms = get(*f, "detect_ms");
    expect(!ms.empty() && std::stod(ms) >= 0 && std::stod(ms) < 30000,
           name + ": noticed in " + ms + " ms (no hang)");
    expect(get(*f, "reason").find(because) != std::string::npos,
           name + ": the platform's reason: " + get(*f, "reason"));
  }
  void ping(const posix::ReportFields* f, const std::string& name, std::uint64_t count) {
    expect(f != nullptr, name + ": a result line");
    if (!f) return;
    expect(get(*f, "ok") == "1", name + ": ok=1 (error: " + get(*f, "error") + ")");
    expect(number(*f, "messages") == count, name + ": " + get(*f, "messages") + " round trips");
  }
};

int check(const std::string& name, const std::string& log) {
  std::ifstream skipped(log + ".skip");
  if (skipped) {
    std::string why;
    std::getline(skipped, why);
    std::printf("SKIP: the Xen boot was skipped: %s\n", why.c_str());
    return kSkip;
  }
  std::ifstream in(log);
  if (!in) {
    std::printf("FAIL: %s is missing (did xen_vm_boot run?)\n", log.c_str());
    return 1;
  }
  std::stringstream text;
  text << in.rdbuf();
  const Run run = parse_console(text.str());
  const std::uint64_t bytes = run.sizes.count("bytes") ? std::stoull(run.sizes.at("bytes")) : 0;
  const std::uint64_t count = run.sizes.count("count") ? std::stoull(run.sizes.at("count")) : 0;
  Checker c;
  c.expect(bytes > 0 && count > 0, "the console has dom0's IVMC-SIZES line");
  if (name == "programme_completed") {
    c.expect(text.str().find("IVMC-EXIT 0") != std::string::npos,
             "dom0 ran the whole programme and every step succeeded (IVMC-EXIT 0; a timeout or "
             "a failed step leaves none)");
  } else if (name == "ring_stream_polling") {
    c.stream(find(run, "a", "stream", "polling"), "dom0 <- domU a, polling", bytes);
  } else if (name == "ring_stream_on_demand") {
    const posix::ReportFields* f = find(run, "a", "stream", "on_demand");
    c.stream(f, "dom0 <- domU a, on_demand (event channels)", bytes);
  } else if (name == "ring_ping_64b") {
    c.ping(find(run, "a", "ping", "polling"), "64 B ping, polling", count);
    const posix::ReportFields* f = find(run, "a", "ping", "on_demand");
    c.ping(f, "64 B ping, on_demand", count);
    // Under on_demand the pinger sleeps on its event channel and each reply's notify ends it.
    if (f)
      c.expect(number(*f, "wakeups") > 0,
               "on_demand ping woke up by event channel (" + get(*f, "wakeups") + " wake-ups)");
  } else if (name == "network_path") {
    c.stream(find(run, "a", "tcp-stream"), "TCP stream dom0 <- domU a over netfront/netback",
             bytes);
    c.ping(find(run, "a", "tcp-ping"), "64 B TCP ping", count);
  } else if (name == "domu_destroyed_mid_stream") {
    c.death(find(run, "b", "stream", "on_demand", "recv-kill"), "domU b destroyed mid-stream",
            "is gone");
  } else if (name == "domu_agent_crash_unmap_notify") {
    const posix::ReportFields* f = find(run, "c", "stream", "on_demand", "recv-crash");
    c.death(f, "domU c's agent exits abruptly mid-stream", "unmapped");
    if (f) c.expect(number(*f, "sent_snapshot") > 0, "the crashed sender's final count was read");
  } else if (name == "domu_to_domu_stream") {
    for (const std::string policy : {"polling", "on_demand"}) {
      c.stream(find(run, "e", "relay-map", policy), "domU d -> domU e, " + policy, bytes);
      const posix::ReportFields* sender = find(run, "e", "relay-offer", policy);
      c.expect(sender && get(*sender, "ok") == "1",
               "domU d's sending side, " + policy + ": ok=1" +
                   (sender ? " (error: " + get(*sender, "error") + ")" : ""));
    }
  } else if (name == "membership_xenstore") {
    for (const std::string source : {"scan", "watch"}) {
      for (const std::string domu : {"a", "b", "c"}) {
        const std::string id = run.domids.count(domu) ? run.domids.at(domu) : "?";
        const auto* created = membership(run, source, "creation", id);
        c.expect(created && created->at("dom0_believes") == "1",
                 source + ": saw domU " + domu + " (domid " + id + ") created; dom0's view has it");
        const auto* gone = membership(run, source, "shutdown", id);
        c.expect(gone && gone->at("dom0_believes") == "0",
                 source + ": saw domU " + domu + " go; dom0's view dropped it");
      }
      const double ms = membership_delay_ms(run, source);
      c.expect(ms >= 0 && ms < 10000, source + ": learnt of b's destroy " + std::to_string(ms) +
                                          " ms after xl destroy started");
    }
  } else if (name == "new_domu_after_destroy") {
    c.expect(run.domids.count("b") && run.domids.count("c") &&
                 run.domids.at("b") != run.domids.at("c"),
             "domU c is a new domain");
    c.stream(find(run, "c", "stream", "on_demand", "recv"), "dom0 <- the new domU c, on_demand",
             bytes);
  } else if (name == "link_follows_view") {
    // domU f -> domU g over a link while dom0 flipped f's view of g four times: ring, TCP,
    // ring, TCP, ring. Every byte arrived once and in order (the receiver checks each in
    // place), both ends agree on the stream, and the link really switched each way.
    const posix::ReportFields* sent = find(run, "g", "link-send");
    const posix::ReportFields* got = find(run, "g", "link-recv");
    c.expect(sent && got, "both link ends reported");
    if (!sent || !got) return 1;
    c.expect(get(*sent, "ok") == "1", "f's sending end: ok=1 (error: " + get(*sent, "error") + ")");
    c.expect(get(*got, "ok") == "1",
             "g's receiving end: ok=1, every byte in place (error: " + get(*got, "error") + ")");
    c.expect(number(*got, "bytes") == number(*sent, "bytes") && number(*got, "bytes") > 0,
             "g received the " + get(*sent, "bytes") + " bytes f sent: " + get(*got, "bytes"));
    c.expect(get(*got, "checksum") == get(*sent, "checksum") &&
                 get(*got, "checksum") == hex16(posix::expected_checksum(number(*got, "bytes"))),
             "both ends have the stream's checksum " + get(*got, "checksum"));
    c.expect(number(*sent, "to_local") >= 3 && number(*sent, "to_remote") >= 2,
             "f switched to the ring 3 times and to TCP twice (to_local=" + get(*sent, "to_local") +
                 " to_remote=" + get(*sent, "to_remote") + ")");
    c.expect(number(*sent, "sent_local") > 0 && number(*sent, "sent_remote") > 0,
             "frames went both ways: " + get(*sent, "sent_local") + " on rings, " +
                 get(*sent, "sent_remote") + " over TCP");
    c.expect(number(*got, "receiver_switches") >= 4,
             "g followed every switch (" + get(*got, "receiver_switches") +
                 " path changes: " + get(*got, "changes") + ")");
    c.expect(number(*got, "duplicates") == 0 && number(*got, "lost") == 0,
             "no duplicates, no gaps (" + get(*got, "duplicates") + ", " + get(*got, "lost") + ")");
    c.expect(number(*sent, "epochs") >= 3, "each return to the ring was a new ring instance (" +
                                               get(*sent, "epochs") + " epochs)");
  } else {
    std::printf("unknown check '%s'\n", name.c_str());
    return 2;
  }
  return c.failures.empty() ? 0 : 1;
}

void figures(const std::string& console) {
  const Run run = parse_console(console);
  auto stream_rate = [&](const posix::ReportFields* f, const std::string& what) {
    if (f && get(*f, "ok") == "1" && number(*f, "ns") > 0)
      std::printf("VM-FIGURE xen %s: %.1f MB/s\n", what.c_str(),
                  number(*f, "bytes") * 1e3 / number(*f, "ns"));
  };
  auto rtt = [&](const posix::ReportFields* f, const std::string& what) {
    if (f && get(*f, "ok") == "1")
      std::printf("VM-FIGURE xen %s: p50 %.1f us, p99 %.1f us\n", what.c_str(),
                  number(*f, "rtt_p50_ns") / 1e3, number(*f, "rtt_p99_ns") / 1e3);
  };
  stream_rate(find(run, "a", "stream", "polling"), "ring stream domU->dom0 polling");
  stream_rate(find(run, "a", "stream", "on_demand"), "ring stream domU->dom0 on_demand");
  stream_rate(find(run, "a", "tcp-stream"), "TCP stream domU->dom0 (netfront/netback)");
  stream_rate(find(run, "e", "relay-map", "polling"), "ring stream domU->domU polling");
  stream_rate(find(run, "e", "relay-map", "on_demand"), "ring stream domU->domU on_demand");
  rtt(find(run, "a", "ping", "polling"), "ring 64 B RTT polling");
  rtt(find(run, "a", "ping", "on_demand"), "ring 64 B RTT on_demand");
  rtt(find(run, "a", "tcp-ping"), "TCP 64 B RTT");
  if (const auto* f = find(run, "g", "link-recv"); f && get(*f, "ok") == "1")
    std::printf("VM-FIGURE xen link domU->domU across 4 view changes: %s bytes, %.1f MB/s, "
                "path changes %s\n",
                get(*f, "bytes").c_str(),
                number(*f, "bytes") * 1e3 / std::max<std::uint64_t>(number(*f, "ns"), 1),
                get(*f, "changes").c_str());
  if (const auto* f = find(run, "b", "stream", "", "recv-kill"))
    std::printf("VM-FIGURE xen domU destroyed mid-stream: noticed %s ms after xl destroy started\n",
                get(*f, "detect_ms").c_str());
  for (const char* source : {"watch", "scan"})
    if (const double ms = membership_delay_ms(run, source); ms >= 0)
      std::printf("VM-FIGURE xen membership %s learnt of the destroyed domU: %.1f ms after xl "
                  "destroy started\n",
                  source, ms);
  if (const auto* f = find(run, "c", "stream", "", "recv-crash"))
    std::printf(
        "VM-FIGURE xen domU agent crashed mid-stream: noticed %s ms after its last message\n",
        get(*f, "detect_ms").c_str());
  std::fflush(stdout);
}

// `ivmc run SCENARIO --backend xen` end to end against `ivmc run SCENARIO` (simulated).
int ivmc_run(const std::string& ivmc, const std::string& scenario, const std::string& image_dir,
             const std::string& out) {
  std::filesystem::create_directories(out);
  if (posix::find_qemu().empty())
    return skip(out + "/run", "qemu-system-x86_64 not found (scripts/deps.sh test)");
  std::string why;
  if (!xen::XenImage::from_dir(image_dir, why))
    return skip(out + "/run", "no Xen test image (xen_vm_image skipped?): " + why);
  std::string rm = "rm -rf '" + out + "/sim' '" + out + "/xen'";
  if (std::system(rm.c_str()) != 0) return 1;
  const std::string sim_cmd = ivmc + " run " + scenario + " --quiet --out " + out + "/sim";
  constexpr std::uint64_t kStreamBytes = 32u << 20;
  const std::string xen_cmd = ivmc + " run " + scenario + " --backend xen --guest-bytes " +
                              std::to_string(kStreamBytes) + " --out " + out + "/xen";
  Checker c;
  std::printf("$ %s\n", sim_cmd.c_str());
  c.expect(std::system(sim_cmd.c_str()) == 0, "the simulated run succeeded");
  std::printf("$ %s\n", xen_cmd.c_str());
  std::fflush(stdout);
  c.expect(std::system(xen_cmd.c_str()) == 0, "ivmc run --backend xen succeeded");
  if (!c.failures.empty()) return 1;
  auto header = [](const std::string& csv) {
    std::ifstream in(csv);
    std::string line;
    std::getline(in, line);
    return line;
  };
  const std::string sim_header = header(out + "/sim/results.csv");
  c.expect(!sim_header.empty(), "the simulation wrote results.csv");
  c.expect(header(out + "/xen/results.csv") == sim_header,
           "the xen run's results.csv has exactly the simulation's columns");
  const auto rows = experiment::read_results(out + "/xen/results.csv");
  c.expect(rows.size() == 1, "one row of results");
  if (rows.size() != 1) return 1;
  const auto& row = rows.front();
  auto num = [&](const char* key) {
    const auto it = row.find(key);
    return it == row.end() ? std::nan("") : std::stod(it->second);
  };
  // The path metrics are what the domUs measured (frames their ring or their TCP path took,
  // rings they offered or mapped), checked against what this test set up: a and b share a
  // scenario host (w0 stream, w2 rr: all through a ring), a and c do not (w1, w3: all over
  // the network). Each stream is kStreamBytes in xen_pair's 4096 B messages; each rr workload
  // 1,000 round trips (docs/results.md), a request and a reply each.
  const double stream_frames = kStreamBytes / 4096.0, rr_frames = 2 * 1000.0;
  c.expect(num("w0_local_share") == 1, "a -> b (one scenario host): every frame on the ring");
  c.expect(num("w1_local_share") == 0, "a -> c (two scenario hosts): every frame on the network");
  c.expect(num("w2_local_share") == 1 && num("w3_local_share") == 0,
           "the request/response pairs likewise (w2 ring, w3 network)");
  c.expect(num("frames_local") == stream_frames + rr_frames,
           "frames_local is exactly w0's stream and w2's requests and replies (" +
               std::to_string(num("frames_local")) + ")");
  c.expect(num("frames_remote") == stream_frames + rr_frames,
           "frames_remote is exactly w1's stream and w3's requests and replies (" +
               std::to_string(num("frames_remote")) + ")");
  c.expect(num("w0_mbps") > 0 && num("w1_mbps") > 0, "both streams moved their bytes");
  c.expect(num("w2_transactions_per_s") > 0 && num("w3_transactions_per_s") > 0,
           "both request/response loops made their round trips");
  c.expect(num("channels_opened") == 2, "two rings were opened by both their domUs (w0, w2)");
  c.expect(num("wakeups") > 0, "on_demand rings woke their domUs through event channels");
  c.expect(num("lost_messages") == 0, "nothing lost (checksums end to end)");
  c.expect(std::isnan(num("race_exposure")), "race exposure is NaN: not observable on Xen");
  std::printf("VM-FIGURE xen ivmc run: domU->domU ring stream (xen_pair w0): %.1f Mb/s\n",
              num("w0_mbps"));
  std::printf("VM-FIGURE xen ivmc run: domU->domU TCP through dom0 (xen_pair w1): %.1f Mb/s\n",
              num("w1_mbps"));
  std::printf("VM-FIGURE xen ivmc run: 64 B RR ring (w2) %.0f trans/s, network (w3) %.0f trans/s\n",
              num("w2_transactions_per_s"), num("w3_transactions_per_s"));
  return c.failures.empty() ? 0 : 1;
}

// Issue 14, Xen part: `ivmc run scenarios/examples/xen_migration.toml --backend xen`. domU a
// streams to domU b while dom0 moves a to "host 1" and back with xl save + xl restore (a new
// domain id each time); dom0's view service learns of a's new domains by a XenStore scan every
// 2 s. Checked: the run succeeded, which means both ends reported ok, the receiver checked
// every byte in place and both checksums and byte counts agree (xen_migration_results throws
// otherwise); the simulation's columns; both moves played; the link fell back to TCP and came
// back to a ring (frames on both paths, at least two switches to a ring and two ring instances
// for the start and the return); nothing lost; and the race columns measured, not NaN.
int ivmc_migration(const std::string& ivmc, const std::string& scenario,
                   const std::string& image_dir, const std::string& out) {
  std::filesystem::create_directories(out);
  if (posix::find_qemu().empty())
    return skip(out + "/run", "qemu-system-x86_64 not found (scripts/deps.sh test)");
  std::string why;
  if (!xen::XenImage::from_dir(image_dir, why))
    return skip(out + "/run", "no Xen test image (xen_vm_image skipped?): " + why);
  std::string rm = "rm -rf '" + out + "/sim' '" + out + "/xen'";
  if (std::system(rm.c_str()) != 0) return 1;
  const std::string sim_cmd = ivmc + " run " + scenario + " --quiet --out " + out + "/sim";
  const std::string xen_cmd = ivmc + " run " + scenario + " --backend xen --out " + out + "/xen";
  Checker c;
  std::printf("$ %s\n", sim_cmd.c_str());
  c.expect(std::system(sim_cmd.c_str()) == 0, "the simulated run succeeded");
  std::printf("$ %s\n", xen_cmd.c_str());
  std::fflush(stdout);
  c.expect(std::system(xen_cmd.c_str()) == 0,
           "ivmc run --backend xen succeeded (both ends ok, every byte checked, checksums equal)");
  if (!c.failures.empty()) return 1;
  auto header = [](const std::string& csv) {
    std::ifstream in(csv);
    std::string line;
    std::getline(in, line);
    return line;
  };
  const std::string sim_header = header(out + "/sim/results.csv");
  c.expect(!sim_header.empty() && header(out + "/xen/results.csv") == sim_header,
           "the xen run's results.csv has exactly the simulation's columns");
  const auto rows = experiment::read_results(out + "/xen/results.csv");
  c.expect(rows.size() == 1, "one row of results");
  if (rows.size() != 1) return 1;
  const auto& row = rows.front();
  auto num = [&](const char* key) {
    const auto it = row.find(key);
    return it == row.end() ? std::nan("") : std::stod(it->second);
  };
  c.expect(num("migrations") == 2, "both moves were played as save/restore");
  c.expect(num("frames_local") > 0 && num("frames_remote") > 0,
           "frames went over a ring and over TCP (" + std::to_string(num("frames_local")) + ", " +
               std::to_string(num("frames_remote")) + ")");
  c.expect(num("switches_to_local") >= 2,
           "the link took a ring at the start and again after coming back (" +
               std::to_string(num("switches_to_local")) + ")");
  c.expect(num("channels_opened") >= 2, "a new ring instance after the return");
  c.expect(num("lost_bytes") == 0 && num("lost_messages") == 0, "nothing lost");
  // Measured, not NaN. Their size depends on whether dom0's scan found the restored domain
  // before it ran again (xl restore under TCG takes longer than the 2 s period): not asserted.
  c.expect(num("race_exposure") >= 0 && num("race_exposure") < 1,
           "race exposure measured (" + std::to_string(num("race_exposure")) + ")");
  c.expect(num("race_operations") >= 0 && num("race_errors") >= 0 &&
               num("sends_in_race_window") >= 0,
           "race operations and errors measured (" + std::to_string(num("race_operations")) + ")");
  c.expect(num("pending_bytes") >= 0 && num("recovered_bytes") >= 0,
           "pending and recovered bytes measured");
  c.expect(num("switches_to_remote") >= 1, "the link fell back to TCP after the first move");
  c.expect(num("membership_probes") > 0, "dom0's scans counted");
  std::printf("VM-FIGURE xen migration: %.1f Mb/s, local share %.2f, exposure %.4f, race ops "
              "%.0f, pending %.0f B, recovered %.0f B, move %.2f s\n",
              num("w0_mbps"), num("w0_local_share"), num("race_exposure"), num("race_operations"),
              num("pending_bytes"), num("recovered_bytes"), num("migration_s_mean"));
  return c.failures.empty() ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"Xen vm tests: one boot, checked per scenario"};
  app.require_subcommand(1, 1);
  std::string image_dir, log, name;
  std::uint64_t bytes = 32u << 20, count = 2000, kill_at = 16u << 20;
  // 96-101 s on a quiet machine; at load average 8-9 (three engineers' jobs on 2 cores) each
  // `xl create` took 30-49 s instead of ~15 s and the programme had reached its eighth domU
  // (of nine) at 484-508 s, so it needs about 650 s there: 840 s leaves a fifth to spare.
  double timeout_s = 840;
  CLI::App* boot = app.add_subcommand("boot", "boot the image once, run every scenario");
  boot->add_option("--image", image_dir)->required();
  boot->add_option("--log", log)->required();
  boot->add_option("--bytes", bytes, "bytes per stream");
  boot->add_option("--count", count, "round trips per ping");
  boot->add_option("--kill", kill_at, "bytes into the stream when domU b is destroyed");
  boot->add_option("--timeout", timeout_s, "seconds from launch to power-off, then SIGKILL");
  CLI::App* chk = app.add_subcommand("check", "check one scenario in the log");
  chk->add_option("name", name)->required();
  chk->add_option("--log", log)->required();
  std::string ivmc, scenario, out_dir;
  CLI::App* run_cmd = app.add_subcommand("ivmc-run", "ivmc run --backend xen, end to end");
  run_cmd->add_option("--ivmc", ivmc)->required();
  run_cmd->add_option("--scenario", scenario)->required();
  run_cmd->add_option("--image", image_dir)->required();
  run_cmd->add_option("--out", out_dir)->required();
  CLI::App* mig_cmd =
      app.add_subcommand("ivmc-migration", "ivmc run --backend xen across save/restore moves");
  mig_cmd->add_option("--ivmc", ivmc)->required();
  mig_cmd->add_option("--scenario", scenario)->required();
  mig_cmd->add_option("--image", image_dir)->required();
  mig_cmd->add_option("--out", out_dir)->required();
  CLI11_PARSE(app, argc, argv);
  if (app.got_subcommand(chk)) return check(name, log);
  if (app.got_subcommand(mig_cmd)) return ivmc_migration(ivmc, scenario, image_dir, out_dir);
  if (app.got_subcommand(run_cmd)) return ivmc_run(ivmc, scenario, image_dir, out_dir);

  (void)::unlink((log + ".skip").c_str());
  const std::string qemu = posix::find_qemu();
  if (qemu.empty())
    return skip(log, "qemu-system-x86_64 not found (scripts/deps.sh test, or set IVMC_QEMU)");
  std::string why;
  const auto image = xen::XenImage::from_dir(image_dir, why);
  if (!image) return skip(log, "no Xen test image: " + why);
  if (const char* env = std::getenv("IVMC_VM_BYTES"); env && *env) bytes = std::stoull(env);
  xen::XenBootOptions o;
  o.qemu = qemu;
  o.image = *image;
  o.serial_log = log;
  o.timeout = static_cast<Nanos>(timeout_s * 1e9);
  o.dom0_args = {"ivmc_bytes=" + std::to_string(bytes), "ivmc_count=" + std::to_string(count),
                 "ivmc_kill=" + std::to_string(kill_at)};
  xen::XenBoot machine(o);
  std::printf("booting Xen under QEMU (pid %d), console in %s\n", machine.pid(), log.c_str());
  std::fflush(stdout);
  const xen::XenBootOutcome out = machine.wait();
  std::printf("Xen boot ended after %.1f s\n", out.wall / 1e9);
  figures(out.console);
  // The boot itself fails only when dom0 never started the programme; a scenario that failed
  // or a programme cut off by the timeout is reported by the checks (programme_completed and
  // the scenario's own), which read whatever the console holds.
  if (out.timed_out || out.exit_code != 0) std::printf("NOTE: %s\n", out.describe().c_str());
  if (out.console.find("IVMC-SIZES ") == std::string::npos) {
    std::printf("FAIL: dom0 never started the test programme\n");
    return 1;
  }
  return 0;
}
