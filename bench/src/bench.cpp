// ivmc bench: orchestration, the ring experiments, and the report.
#include "ivmc/bench/bench.hpp"

#include "baselines.hpp"
#include "harness.hpp"

#include "ivmc/core/channel.hpp"
#include "ivmc/kvm/host_platform.hpp"
#include "ivmc/kvm/ivshmem_server.hpp"

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

// A server on a private socket, served by a thread of this process for the whole run.
class PrivateServer {
public:
  explicit PrivateServer(std::size_t region_bytes) {
    kvm::IvshmemServerOptions o;
    const auto tag = fmt::format("ivmc-bench-{}", getpid());
    o.socket_path = "/tmp/" + tag + ".sock";
    o.shm_name = tag;
    o.size = region_bytes;
    o.vectors = kvm::IvshmemPeer::kDefaultVectors;
    o.log = [](std::string_view) {};
    server_ = std::make_unique<kvm::IvshmemServer>(o);
    server_->start();
    thread_ = std::thread([this] { server_->run_until(stop_); });
  }
  ~PrivateServer() {
    stop_ = true; // seq_cst store: the server's poll loop sees it within its poll timeout
    thread_.join();
  }
  std::string socket_path() const { return server_->options().socket_path; }

private:
  std::unique_ptr<kvm::IvshmemServer> server_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

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

  double rtt_ns(const std::string& mode) {
    std::vector<double> samples;
    const int iterations = options.rtt_iterations, warmup = iterations / 10;
    run(
        "ring ping-pong", mode,
        [&](kvm::HostEndpoint& ep) {
          TscTimer timer;
          std::vector<std::byte> msg(64, std::byte{1}), buf(64);
          for (int i = 0; i < warmup + iterations; ++i) {
            const std::uint64_t t0 = TscTimer::read();
            expect_ok(ep.channel().send(msg, kOpTimeout), "ring send", ep);
            std::size_t n = 0;
            expect_ok(ep.channel().recv(buf, n, kOpTimeout), "ring recv", ep);
            if (i >= warmup) samples.push_back(timer.to_ns(TscTimer::read() - t0));
          }
        },
        [&](kvm::HostEndpoint& ep) {
          std::vector<std::byte> buf(64);
          for (int i = 0; i < warmup + iterations; ++i) {
            std::size_t n = 0;
            if (ep.channel().recv(buf, n, kOpTimeout) != Errc::ok ||
                ep.channel().send(std::span(buf.data(), n), kOpTimeout) != Errc::ok) {
              child_fail("ring ping-pong: " + ep.channel().error_detail());
            }
          }
        });
    return median(samples);
  }
};

template <class F>
double median_of(int repeats, F measure) {
  std::vector<double> v;
  for (int i = 0; i < repeats; ++i) v.push_back(measure());
  return median(v);
}

Throughput median_throughput(int repeats, const std::function<Throughput()>& measure) {
  std::vector<double> g, m;
  for (int i = 0; i < repeats; ++i) {
    const Throughput t = measure();
    g.push_back(t.gbps);
    m.push_back(t.msgs_per_s);
  }
  return {median(g), median(m)};
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

  report.cacheline_rtt_ns =
      median_of(o.repeats, [&] { return cacheline_rtt_ns(cpus, o.rtt_iterations * 5); });
  note(fmt::format("cache-line round trip {:.0f} ns", report.cacheline_rtt_ns));
  report.eventfd_rtt_ns =
      median_of(o.repeats, [&] { return eventfd_rtt_ns(cpus, o.rtt_iterations / 4); });
  note(fmt::format("eventfd round trip {:.0f} ns", report.eventfd_rtt_ns));
  std::vector<std::size_t> copy_sizes = o.sizes;
  copy_sizes.push_back(1u << 20);
  for (std::size_t s : copy_sizes) {
    report.memcpy_gbps[s] = median_of(o.repeats, [&] { return memcpy_gbps(s, 0.1); });
  }
  note("memcpy done");

  PrivateServer server(kvm::HostPlatform::region_bytes_for(o.ring_bytes));
  auto platform = kvm::HostPlatform::connect(server.socket_path(), kSetupTimeout);
  RingExperiment ring{o, cpus, *platform, server.socket_path()};

  for (const std::string mode : {"poll", "block"}) {
    for (std::size_t s : o.sizes) {
      const Throughput t = median_throughput(o.repeats, [&] { return ring.throughput(mode, s); });
      TransportResult r{"ring", mode, s, t.gbps, t.msgs_per_s, std::nullopt};
      if (s == 64) r.rtt_p50_ns = median_of(o.repeats, [&] { return ring.rtt_ns(mode); });
      report.results.push_back(r);
      note(fmt::format("ring {} {} B: {:.2f} GB/s", mode, s, t.gbps));
    }
  }
  for (const auto& [name, kind] :
       {std::pair{"tcp", SocketKind::tcp_loopback}, std::pair{"unix", SocketKind::unix_stream}}) {
    for (std::size_t s : o.sizes) {
      const Throughput t = median_throughput(
          o.repeats, [&] { return socket_throughput(kind, cpus, s, o.seconds_per_point); });
      TransportResult r{name, "block", s, t.gbps, t.msgs_per_s, std::nullopt};
      if (s == 64) {
        r.rtt_p50_ns =
            median_of(o.repeats, [&] { return socket_rtt_ns(kind, cpus, o.rtt_iterations / 4); });
      }
      report.results.push_back(r);
      note(fmt::format("{} {} B: {:.2f} GB/s", name, s, t.gbps));
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
  out += fmt::format("\"eventfd_rtt_ns\": {}, ", number(r.eventfd_rtt_ns));
  out += "\"memcpy_gbps\": {";
  bool first = true;
  for (const auto& [size, gbps] : r.memcpy_gbps) {
    out += fmt::format("{}\"{}\": {}", first ? "" : ", ", size, number(gbps));
    first = false;
  }
  out += "}, \"results\": [";
  first = true;
  for (const auto& x : r.results) {
    out += fmt::format("{}{{\"transport\": \"{}\", \"mode\": \"{}\", \"size\": {}, \"gbps\": {}, "
                       "\"msgs_per_s\": {}, \"rtt_p50_ns\": {}}}",
                       first ? "" : ", ", x.transport, x.mode, x.size, number(x.gbps),
                       number(x.msgs_per_s),
                       x.rtt_p50_ns ? number(*x.rtt_p50_ns) : std::string("null"));
    first = false;
  }
  out += fmt::format("], \"wall_seconds\": {}}}", number(r.wall_seconds));
  return out;
}

std::string to_table(const BenchReport& r) {
  std::string out;
  out +=
      fmt::format("ivmc bench: {}; ring {} KiB per direction\n", r.placement, r.ring_bytes / 1024);
  out += fmt::format("cache-line round trip p50 {:.0f} ns; raw eventfd round trip p50 {:.0f} ns\n",
                     r.cacheline_rtt_ns, r.eventfd_rtt_ns);
  out += "memcpy (one thread):";
  for (const auto& [size, gbps] : r.memcpy_gbps)
    out += fmt::format("  {} B {:.1f} GB/s", size, gbps);
  out += "\n\n";
  out += fmt::format("{:<6} {:<6} {:>8} {:>10} {:>14} {:>14}\n", "path", "mode", "size", "GB/s",
                     "msg/s", "64 B RTT p50");
  for (const auto& x : r.results) {
    out += fmt::format("{:<6} {:<6} {:>8} {:>10.3f} {:>14.0f} {:>14}\n", x.transport, x.mode,
                       x.size, x.gbps, x.msgs_per_s,
                       x.rtt_p50_ns ? fmt::format("{:.0f} ns", *x.rtt_p50_ns) : "");
  }
  // The targets, as ratios from this same run.
  out += "\nratios from this run (target in brackets):\n";
  auto line = [&](const std::string& what, double v, const std::string& target) {
    out += fmt::format("  {:<52} {:>8.2f}x  [{}]\n", what, v, target);
  };
  const auto* poll64 = find(r, "ring", "poll", 64);
  const auto* block64 = find(r, "ring", "block", 64);
  const auto* poll64k = find(r, "ring", "poll", 65536);
  const auto* tcp64 = find(r, "tcp", "block", 64);
  const auto* tcp64k = find(r, "tcp", "block", 65536);
  if (poll64 && poll64->rtt_p50_ns) {
    line("64 B polled RTT / cache-line RTT", *poll64->rtt_p50_ns / r.cacheline_rtt_ns, "<= 2.0");
  }
  if (poll64k && r.memcpy_gbps.count(1u << 20)) {
    line("64 KiB polled throughput / memcpy of 1 MiB", poll64k->gbps / r.memcpy_gbps.at(1u << 20),
         ">= 0.5");
  }
  if (poll64 && tcp64)
    line("64 B msg/s / TCP loopback", poll64->msgs_per_s / tcp64->msgs_per_s, ">= 100");
  if (poll64k && tcp64k)
    line("64 KiB throughput / TCP loopback", poll64k->gbps / tcp64k->gbps, ">= 8");
  if (block64 && block64->rtt_p50_ns) {
    line("blocking 64 B RTT / raw eventfd RTT", *block64->rtt_p50_ns / r.eventfd_rtt_ns, "<= 1.15");
  }
  return out;
}

} // namespace ivmc::bench
