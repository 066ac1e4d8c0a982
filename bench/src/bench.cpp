// ivmc bench: the orchestration: which experiments run in which order, and their medians.
#include "ivmc/bench/bench.hpp"

#include "baselines.hpp"
#include "cleanup_guard.hpp"
#include "harness.hpp"
#include "iceoryx_baseline.hpp"
#include "placement.hpp"
#include "ring_experiment.hpp"

#include "ivmc/core/channel.hpp"
#include "ivmc/kvm/host_platform.hpp"
#include "ivmc/kvm/ivshmem_server_thread.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>

namespace ivmc::bench {
namespace {

constexpr Nanos kSetupTimeout = 5'000'000'000;

// The name of this run's ivshmem server: its shared memory object and socket.
std::string server_tag() {
  return fmt::format("ivmc-bench-{}", getpid());
}

// A server on a private socket, served by a thread of this process for the whole run.
kvm::IvshmemServerThread private_server(std::size_t region_bytes) {
  kvm::IvshmemServerOptions o;
  const auto tag = server_tag();
  o.socket_path = "/tmp/" + tag + ".sock";
  o.shm_name = tag;
  o.size = region_bytes;
  o.vectors = kvm::IvshmemPeer::kDefaultVectors;
  o.log = [](std::string_view) {};
  return kvm::IvshmemServerThread(o);
}

// The cache-line round trip between the two CPUs right now: the placement of the moment.
double probe_placement(const PairCpus& cpus) {
  LineProbe line;
  double rtt = 0;
  run_pair(
      "placement probe", cpus.parent, cpus.child,
      [&] {
        line.parent_round(200);
        rtt = median(line.parent_round(1000));
      },
      [&] {
        line.child_round(1200);
        return 0;
      });
  return rtt;
}

// Runs at near placement: probe within 1.5x of the fastest probe seen in the whole run.
std::vector<std::size_t> near_runs(const std::vector<double>& probes, double fastest) {
  std::vector<std::size_t> keep;
  for (std::size_t i = 0; i < probes.size(); ++i) {
    if (probes[i] <= 1.5 * fastest) keep.push_back(i);
  }
  return keep;
}

std::vector<double> pick(const std::vector<double>& v, const std::vector<std::size_t>& idx) {
  std::vector<double> out;
  for (std::size_t i : idx) out.push_back(v[i]);
  return out;
}

template <class F>
double median_of(int repeats, F measure) {
  std::vector<double> v;
  for (int i = 0; i < repeats; ++i) v.push_back(measure());
  return median(v);
}

} // namespace

BenchReport run_bench(const BenchOptions& o) {
  const double start = now_s();
  BenchReport report;
  report.ring_bytes = o.ring_bytes;
  PairCpus cpus{o.cpu_parent, o.cpu_child};
  if (online_cpus() < 2) cpus = {-1, -1};
  report.placement = cpus.parent < 0 ? "unpinned (one CPU online)"
                                     : fmt::format("processes pinned to CPUs {} and {} of {}",
                                                   cpus.parent, cpus.child, online_cpus());
  auto note = [&](const std::string& line) {
    if (o.progress) fmt::print(stderr, "ivmc bench: {}\n", line);
  };
  report.machine = describe_machine(cpus);
  const double steal_start = steal_ns(cpus.parent) + steal_ns(cpus.child);

  std::vector<std::size_t> copy_sizes = o.sizes;
  copy_sizes.push_back(1u << 20);
  for (std::size_t s : copy_sizes) {
    report.memcpy_gbps[s] = median_of(o.repeats, [&] { return memcpy_gbps(s, 0.1); });
  }
  note("memcpy done");

  // The ivshmem server's shared memory, socket and lock file go even if the bench is
  // interrupted (its own destructor removes them otherwise).
  const auto tag = server_tag();
  const CleanupGuard server_files[] = {CleanupGuard("/dev/shm/" + tag),
                                       CleanupGuard("/tmp/" + tag + ".sock"),
                                       CleanupGuard("/tmp/" + tag + ".sock.lock")};
  auto server = private_server(kvm::HostPlatform::region_bytes_for(o.ring_bytes));
  auto platform = kvm::HostPlatform::connect(server.socket_path(), kSetupTimeout);
  RingExperiment ring(o, cpus, *platform, server.socket_path());

  const PairedRtt poll = ring.rtt("poll");
  note(fmt::format("polled 64 B round trip {:.0f} ns, bare ring {:.0f} ns, cache line {:.0f} ns",
                   median(poll.ring_ns), median(poll.bare_ns), median(poll.baseline_ns)));
  std::map<std::size_t, PairedRtt> poll_small;
  for (std::size_t s : report.small_rtt_sizes) {
    poll_small[s] = ring.rtt("poll", s);
    note(fmt::format("polled {} B round trip {:.0f} ns, cache line {:.0f} ns", s,
                     median(poll_small[s].ring_ns), median(poll_small[s].baseline_ns)));
  }
  const PairedRtt poll_crc = ring.rtt("poll_crc");
  note(fmt::format("polled 64 B round trip with CRC32C {:.0f} ns, cache line {:.0f} ns",
                   median(poll_crc.ring_ns), median(poll_crc.baseline_ns)));
  const PairedRtt zero_copy = ring.rtt("zero_copy");
  note(fmt::format("zero-copy 64 B round trip {:.0f} ns, cache line {:.0f} ns",
                   median(zero_copy.ring_ns), median(zero_copy.baseline_ns)));
  const PairedRtt block = ring.rtt("block");
  note(fmt::format("blocking 64 B round trip {:.0f} ns, eventfd {:.0f} ns", median(block.ring_ns),
                   median(block.baseline_ns)));

  // iceoryx, when built in and its daemon starts. A failure later on drops its rows and says
  // why; it does not end the bench.
  std::string iceoryx_why;
  auto iceoryx = start_iceoryx(cpus, o.sizes, o.ring_bytes, iceoryx_why);
  PairedRtt iceoryx_rtt;
  auto iceoryx_failed = [&](const std::exception& e) {
    iceoryx_why = std::string("failed: ") + e.what();
    iceoryx.reset(); // stops iox-roudi
  };
  if (iceoryx) {
    try {
      iceoryx_rtt = iceoryx->rtt(std::max(3, o.repeats * 3), o.rtt_iterations);
      note(fmt::format("iceoryx 64 B round trip {:.0f} ns, cache line {:.0f} ns",
                       median(iceoryx_rtt.ring_ns), median(iceoryx_rtt.baseline_ns)));
    } catch (const std::exception& e) {
      iceoryx_failed(e);
    }
  }
  if (!iceoryx) note("iceoryx: " + iceoryx_why);

  // Throughput: the transports take turns within each repeat, and every run is preceded by a
  // placement probe, so runs can be compared at like placement.
  struct Path {
    std::string transport, mode;
    std::function<Throughput(std::size_t)> measure;
  };
  const std::vector<Path> paths = {
      {"ring", "poll", [&](std::size_t s) { return ring.throughput("poll", s); }},
      {"ring", "poll_crc", [&](std::size_t s) { return ring.throughput("poll_crc", s); }},
      {"ring", "zero_copy", [&](std::size_t s) { return ring.throughput("zero_copy", s); }},
      {"ring", "block", [&](std::size_t s) { return ring.throughput("block", s); }},
      {"tcp", "block",
       [&](std::size_t s) {
         return socket_throughput(SocketKind::tcp_loopback, cpus, s, o.seconds_per_point);
       }},
      {"unix", "block",
       [&](std::size_t s) {
         return socket_throughput(SocketKind::unix_stream, cpus, s, o.seconds_per_point);
       }},
      {"iceoryx", "zero_copy",
       [&](std::size_t s) {
         if (!iceoryx) return Throughput{};
         try {
           return iceoryx->throughput(s, o.seconds_per_point);
         } catch (const std::exception& e) {
           iceoryx_failed(e);
           return Throughput{};
         }
       }},
  };
  std::map<std::pair<std::size_t, std::size_t>, std::vector<std::size_t>> runs_of; // (size, path)
  double fastest = std::numeric_limits<double>::infinity();
  for (const PairedRtt* x :
       std::initializer_list<const PairedRtt*>{&poll, &poll_crc, &zero_copy, &iceoryx_rtt}) {
    for (double b : x->baseline_ns) fastest = std::min(fastest, b);
  }
  for (const auto& [size, x] : poll_small) {
    for (double b : x.baseline_ns) fastest = std::min(fastest, b);
  }
  for (std::size_t s : o.sizes) {
    for (int rep = 0; rep < o.repeats; ++rep) {
      for (std::size_t p = 0; p < paths.size(); ++p) {
        if (paths[p].transport == "iceoryx" && !iceoryx) continue;
        const double probe = cpus.parent < 0 ? 0 : probe_placement(cpus);
        fastest = std::min(fastest, probe);
        const Throughput t = paths[p].measure(s);
        if (paths[p].transport == "iceoryx" && !iceoryx) continue; // it failed just now
        RunRecord run;
        run.transport = paths[p].transport;
        run.mode = paths[p].mode;
        run.size = s;
        run.gbps = t.gbps;
        run.msgs_per_s = t.msgs_per_s;
        run.probe_rtt_ns = probe;
        run.measuring = t.placement.measuring;
        run.peer = t.placement.peer;
        run.steal_share = t.placement.steal_share;
        run.speed = speed_of(run);
        runs_of[{s, p}].push_back(report.runs.size());
        report.runs.push_back(run);
      }
    }
    note(fmt::format("{} B done", s));
  }
  report.near_rtt_ns = fastest;
  std::map<std::string, std::vector<double>> copying_64k; // polled 64 KiB GB/s by speed mode
  for (RunRecord& run : report.runs) {
    run.near = cpus.parent < 0 || run.probe_rtt_ns <= 1.5 * fastest;
    if (run.transport == "ring" && run.mode == "poll" && run.size == 65536) {
      copying_64k[speed_mode(run)].push_back(run.gbps);
    }
  }
  if (const auto m = report.memcpy_gbps.find(1u << 20); m != report.memcpy_gbps.end()) {
    for (const auto& [mode, gbps] : copying_64k) {
      report.poll_64k_over_memcpy_by_mode[mode] = median(gbps) / m->second;
    }
  }

  auto near_rounds = [&](const PairedRtt& x) {
    auto idx = near_runs(x.baseline_ns, fastest);
    if (idx.empty()) {
      for (std::size_t i = 0; i < x.ring_ns.size(); ++i) idx.push_back(i);
    }
    return idx;
  };
  auto rtt_ratio = [&](const PairedRtt& x) {
    const auto idx = near_rounds(x);
    std::vector<double> ratios;
    for (std::size_t i : idx) ratios.push_back(x.ring_ns[i] / x.baseline_ns[i]);
    return std::tuple{median(pick(x.ring_ns, idx)), median(pick(x.baseline_ns, idx)),
                      median(ratios)};
  };
  const auto [poll_ring, poll_line, poll_ratio] = rtt_ratio(poll);
  report.cacheline_rtt_ns = poll_line;
  report.poll_rtt_ratio = poll_ratio;
  report.poll_rtt_ns = poll_ring;
  if (!poll.bare_ns.empty()) { // the same rounds as the ratio above: ring, bare, probe together
    std::vector<double> over_bare, bare_over_line;
    for (std::size_t i : near_rounds(poll)) {
      over_bare.push_back(poll.ring_ns[i] / poll.bare_ns[i]);
      bare_over_line.push_back(poll.bare_ns[i] / poll.baseline_ns[i]);
    }
    report.bare_rtt_ns = median(pick(poll.bare_ns, near_rounds(poll)));
    report.poll_over_bare_rtt_ratio = median(over_bare);
    report.bare_rtt_ratio = median(bare_over_line);
  }
  for (const auto& [size, x] : poll_small) {
    report.poll_small_rtt_ratio[size] = std::get<2>(rtt_ratio(x));
  }
  const auto [crc_ring, crc_line, crc_ratio] = rtt_ratio(poll_crc);
  report.crc_rtt_ratio = crc_ratio;
  report.crc_rtt_ns = crc_ring;
  const auto [zc_ring, zc_line, zc_ratio] = rtt_ratio(zero_copy);
  report.zero_copy_rtt_ratio = zc_ratio;
  const auto [block_ring, block_efd, block_ratio] = rtt_ratio(block);
  report.eventfd_rtt_ns = block_efd;
  report.block_rtt_ratio = block_ratio;

  const bool iceoryx_measured = iceoryx != nullptr; // no failure on the way
  iceoryx.reset();                                  // stop iox-roudi now
  report.iceoryx = iceoryx_measured ? "measured" : "skipped: " + iceoryx_why;
  if (iceoryx_measured) {
    const auto [iox_rtt, iox_line, iox_ratio] = rtt_ratio(iceoryx_rtt);
    report.iceoryx_rtt_ns = iox_rtt;
    report.iceoryx_rtt_ratio = iox_ratio;
  }

  for (std::size_t s : o.sizes) {
    for (std::size_t p = 0; p < paths.size(); ++p) {
      const auto& all = runs_of[{s, p}];
      if (all.empty()) continue;
      // The runs whose figures count: full CPUs at near placement, else full, else near, else
      // all of them (TransportResult).
      auto select = [&](bool need_full, bool need_near) {
        std::vector<std::size_t> out;
        for (std::size_t i : all) {
          const RunRecord& x = report.runs[i];
          if (need_full && x.speed != "full") continue;
          if (need_near && x.probe_rtt_ns > 1.5 * fastest) continue;
          out.push_back(i);
        }
        return out;
      };
      TransportResult t;
      t.transport = paths[p].transport;
      t.mode = paths[p].mode;
      t.size = s;
      std::vector<std::size_t> used = select(true, true);
      t.full = t.near = !used.empty();
      if (used.empty()) {
        used = select(true, false);
        t.full = !used.empty();
      }
      if (used.empty()) {
        used = select(false, true);
        t.near = !used.empty();
      }
      if (used.empty()) used = all;
      auto medians = [&](const std::vector<std::size_t>& idx, auto field) {
        std::vector<double> v;
        for (std::size_t i : idx) v.push_back(field(report.runs[i]));
        return median(v);
      };
      t.gbps = medians(used, [](const RunRecord& x) { return x.gbps; });
      t.msgs_per_s = medians(used, [](const RunRecord& x) { return x.msgs_per_s; });
      t.placement_rtt_ns = medians(used, [](const RunRecord& x) { return x.probe_rtt_ns; });
      t.wait_share = medians(used, [](const RunRecord& x) { return worst_wait(x); });
      t.gbps_all = medians(all, [](const RunRecord& x) { return x.gbps; });
      t.msgs_per_s_all = medians(all, [](const RunRecord& x) { return x.msgs_per_s; });
      t.runs_used = static_cast<int>(used.size());
      t.runs = static_cast<int>(all.size());
      t.runs_full = static_cast<int>(select(true, false).size());
      if (s == 64 && paths[p].transport == "ring") {
        t.rtt_p50_ns = paths[p].mode == "poll"        ? poll_ring
                       : paths[p].mode == "poll_crc"  ? crc_ring
                       : paths[p].mode == "zero_copy" ? zc_ring
                                                      : block_ring;
      }
      if (s == 64 && paths[p].transport == "iceoryx") t.rtt_p50_ns = report.iceoryx_rtt_ns;
      if (s == 64 && (paths[p].transport == "tcp" || paths[p].transport == "unix")) {
        const auto kind =
            paths[p].transport == "tcp" ? SocketKind::tcp_loopback : SocketKind::unix_stream;
        t.rtt_p50_ns = median_of(o.repeats, [&] {
          return socket_rtt_ns(kind, cpus, std::max(200, o.rtt_iterations / 20));
        });
      }
      report.results.push_back(t);
    }
  }
  report.wall_seconds = now_s() - start;
  finish_machine(report.machine, cpus, steal_start, report.wall_seconds);
  return report;
}

} // namespace ivmc::bench
