// ivmc bench: orchestration, the ring experiments, and the report.
#include "ivmc/bench/bench.hpp"

#include "baselines.hpp"
#include "cleanup_guard.hpp"
#include "harness.hpp"
#include "iceoryx_baseline.hpp"

#include "ivmc/core/channel.hpp"
#include "ivmc/kvm/host_platform.hpp"
#include "ivmc/kvm/ivshmem_server_thread.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>

namespace ivmc::bench {
namespace {

constexpr Nanos kSetupTimeout = 5'000'000'000;
constexpr Nanos kOpTimeout = 10'000'000'000;

ChannelConfig ring_config(const BenchOptions& o, const std::string& mode) {
  ChannelConfig c;
  c.ring_bytes = o.ring_bytes;
  c.notify.policy = mode == "poll" ? NotifyPolicy::polling : NotifyPolicy::on_demand;
  c.liveness.peer_timeout = 10'000'000'000; // a benchmark peer may be descheduled for a while
  return c;
}

void expect_ok(Errc e, const char* what, kvm::HostEndpoint& ep) {
  if (e != Errc::ok) {
    throw std::runtime_error(
        fmt::format("{}: {} ({})", what, to_string(e), ep.channel().error_detail()));
  }
}

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

struct RingExperiment {
  const BenchOptions& options;
  const PairCpus& cpus;
  kvm::HostPlatform& platform;
  std::string socket_path;

  kvm::EndpointOptions endpoint(const std::string& mode) const {
    kvm::EndpointOptions e;
    e.channel = ring_config(options, mode);
    return e;
  }

  // Runs `parent_role` on a fresh channel's creator here, `child_role` on its attacher in a
  // peer process with its own connection to the server.
  template <class P, class C>
  void run(const std::string& what, const std::string& mode, P parent_role, C child_role) {
    auto creator = platform.create_channel(endpoint(mode));
    run_pair(
        what, cpus.parent, cpus.child,
        [&] {
          const Errc e = creator->wait_for_peer(kSetupTimeout);
          if (e != Errc::ok)
            throw std::runtime_error("peer never attached: " + std::string(to_string(e)));
          parent_role(*creator);
        },
        [&] {
          auto peer_platform = kvm::HostPlatform::connect(socket_path, kSetupTimeout);
          auto attacher = peer_platform->attach_channel(endpoint(mode), kSetupTimeout);
          child_role(*attacher);
          return 0;
        });
  }

  Throughput throughput(const std::string& mode, std::size_t size) {
    Throughput result;
    run(
        "ring stream", mode,
        [&](kvm::HostEndpoint& ep) {
          std::vector<std::byte> buf(size);
          std::uint64_t messages = 0, bytes = 0;
          double first = 0;
          for (;;) {
            std::size_t n = 0;
            const Errc e = ep.channel().recv(buf, n, kOpTimeout);
            if (e == Errc::peer_closed) break;
            expect_ok(e, "ring recv", ep);
            if (messages++ == 0) first = now_s();
            bytes += n;
          }
          const double elapsed = now_s() - first;
          result.gbps = static_cast<double>(bytes) / elapsed / 1e9;
          result.msgs_per_s = static_cast<double>(messages) / elapsed;
        },
        [&](kvm::HostEndpoint& ep) {
          std::vector<std::byte> msg(size, std::byte{0x5a});
          const double t0 = now_s();
          for (std::uint64_t i = 0;; ++i) {
            if (ep.channel().send(msg, kOpTimeout) != Errc::ok) {
              child_fail("ring send: " + ep.channel().error_detail());
            }
            if ((i & 63) == 0 && now_s() - t0 > options.seconds_per_point) break;
          }
          if (ep.channel().close(kOpTimeout) != Errc::ok) child_fail("ring close");
        });
    return result;
  }

  // 64 B round trips on the ring, interleaved round by round with the baseline they are
  // judged against (cache-line probe when polling, raw eventfd when blocking), in the same two
  // processes, so the placement of the moment applies to both.
  PairedRtt rtt(const std::string& mode) {
    LineProbe line;
    EventfdProbe efd;
    const bool poll = mode == "poll";
    const int rounds = std::max(3, options.repeats * 3);
    const int n = poll ? options.rtt_iterations : std::max(200, options.rtt_iterations / 20);
    PairedRtt out;
    run(
        "ring ping-pong", mode,
        [&](kvm::HostEndpoint& ep) {
          TscTimer timer;
          std::vector<std::byte> msg(64, std::byte{1}), buf(64);
          for (int r = 0; r < rounds + 1; ++r) { // round 0 warms up
            const double base = median(poll ? line.parent_round(n) : efd.parent_round(n));
            std::vector<double> samples;
            for (int i = 0; i < n; ++i) {
              const std::uint64_t t0 = TscTimer::read();
              expect_ok(ep.channel().send(msg, kOpTimeout), "ring send", ep);
              std::size_t got = 0;
              expect_ok(ep.channel().recv(buf, got, kOpTimeout), "ring recv", ep);
              samples.push_back(timer.to_ns(TscTimer::read() - t0));
            }
            if (r == 0) continue;
            out.ring_ns.push_back(median(samples));
            out.baseline_ns.push_back(base);
          }
        },
        [&](kvm::HostEndpoint& ep) {
          std::vector<std::byte> buf(64);
          for (int r = 0; r < rounds + 1; ++r) {
            poll ? line.child_round(n) : efd.child_round(n);
            for (int i = 0; i < n; ++i) {
              std::size_t got = 0;
              if (ep.channel().recv(buf, got, kOpTimeout) != Errc::ok ||
                  ep.channel().send(std::span(buf.data(), got), kOpTimeout) != Errc::ok) {
                child_fail("ring ping-pong: " + ep.channel().error_detail());
              }
            }
          }
        });
    return out;
  }
};

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
  RingExperiment ring{o, cpus, *platform, server.socket_path()};

  const PairedRtt poll = ring.rtt("poll");
  note(fmt::format("polled 64 B round trip {:.0f} ns, cache line {:.0f} ns", median(poll.ring_ns),
                   median(poll.baseline_ns)));
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
  struct Runs {
    std::vector<double> gbps, msgs, probe;
  };
  std::map<std::pair<std::size_t, std::size_t>, Runs> runs; // (size, path) -> runs
  double fastest = *std::min_element(poll.baseline_ns.begin(), poll.baseline_ns.end());
  for (double b : iceoryx_rtt.baseline_ns) fastest = std::min(fastest, b);
  for (std::size_t s : o.sizes) {
    for (int rep = 0; rep < o.repeats; ++rep) {
      for (std::size_t p = 0; p < paths.size(); ++p) {
        if (paths[p].transport == "iceoryx" && !iceoryx) continue;
        const double probe = cpus.parent < 0 ? 0 : probe_placement(cpus);
        fastest = std::min(fastest, probe);
        const Throughput t = paths[p].measure(s);
        auto& r = runs[{s, p}];
        r.gbps.push_back(t.gbps);
        r.msgs.push_back(t.msgs_per_s);
        r.probe.push_back(probe);
      }
    }
    note(fmt::format("{} B done", s));
  }
  report.near_rtt_ns = fastest;

  auto rtt_ratio = [&](const PairedRtt& x) {
    auto idx = near_runs(x.baseline_ns, fastest);
    if (idx.empty()) {
      for (std::size_t i = 0; i < x.ring_ns.size(); ++i) idx.push_back(i);
    }
    std::vector<double> ratios;
    for (std::size_t i : idx) ratios.push_back(x.ring_ns[i] / x.baseline_ns[i]);
    return std::tuple{median(pick(x.ring_ns, idx)), median(pick(x.baseline_ns, idx)),
                      median(ratios)};
  };
  const auto [poll_ring, poll_line, poll_ratio] = rtt_ratio(poll);
  report.cacheline_rtt_ns = poll_line;
  report.poll_rtt_ratio = poll_ratio;
  const auto [block_ring, block_efd, block_ratio] = rtt_ratio(block);
  report.eventfd_rtt_ns = block_efd;
  report.block_rtt_ratio = block_ratio;

  const bool iceoryx_measured = iceoryx != nullptr; // no failure on the way
  iceoryx.reset();                                  // stop iox-roudi now
  report.iceoryx = iceoryx_measured ? "measured" : "skipped: " + iceoryx_why;
  if (iceoryx_measured) {
    const auto [iox_rtt, iox_line, iox_ratio] = rtt_ratio(iceoryx_rtt);
    (void)iox_line;
    report.iceoryx_rtt_ns = iox_rtt;
    report.iceoryx_rtt_ratio = iox_ratio;
  }

  for (std::size_t s : o.sizes) {
    for (std::size_t p = 0; p < paths.size(); ++p) {
      if (paths[p].transport == "iceoryx" && !iceoryx_measured) continue;
      const Runs& r = runs[{s, p}];
      auto idx = near_runs(r.probe, fastest);
      const bool near = !idx.empty();
      if (!near) {
        for (std::size_t i = 0; i < r.probe.size(); ++i) idx.push_back(i);
      }
      TransportResult t{paths[p].transport,        paths[p].mode, s, median(pick(r.gbps, idx)),
                        median(pick(r.msgs, idx)), std::nullopt};
      t.placement_rtt_ns = median(pick(r.probe, idx));
      t.gbps_all = median(r.gbps);
      t.msgs_per_s_all = median(r.msgs);
      t.near = near;
      t.runs_used = static_cast<int>(idx.size());
      if (s == 64 && paths[p].transport == "ring") {
        t.rtt_p50_ns = paths[p].mode == "poll" ? poll_ring : block_ring;
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
  return report;
}

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
