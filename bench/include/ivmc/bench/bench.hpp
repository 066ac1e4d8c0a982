// ivmc bench: the shared-memory ring against its baselines, measured in one run between two
// real processes (memcpy, a cache-line ping-pong, raw eventfd, TCP loopback, UNIX sockets).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ivmc::bench {

struct BenchOptions {
  std::vector<std::size_t> sizes{64, 1024, 16384, 65536};
  double seconds_per_point = 0.25; // each throughput point runs this long
  int repeats = 3;                 // each figure is the median of this many runs
  std::uint32_t ring_bytes = 1u << 20;
  int rtt_iterations = 20000;
  int cpu_parent = 0;    // the measuring process
  int cpu_child = 1;     // the peer process
  bool progress = false; // one line per point on stderr
};

struct TransportResult {
  std::string transport; // "ring", "tcp", "unix"
  std::string mode;      // "poll", "block"
  std::size_t size = 0;
  double gbps = 0;
  double msgs_per_s = 0;
  std::optional<double> rtt_p50_ns; // measured at 64 B only
};

struct BenchReport {
  std::string placement;       // which CPUs the two processes ran on
  double cacheline_rtt_ns = 0; // p50 round trip of one cache line between the processes
  double eventfd_rtt_ns = 0;   // p50 round trip of a raw eventfd ping-pong (blocking baseline)
  std::map<std::size_t, double> memcpy_gbps; // single thread, by copy size
  std::vector<TransportResult> results;
  std::uint32_t ring_bytes = 0;
  double wall_seconds = 0;
};

BenchReport run_bench(const BenchOptions& options);
std::string to_json(const BenchReport& report);
// A table for people, with the target ratios computed from this run.
std::string to_table(const BenchReport& report);

} // namespace ivmc::bench
