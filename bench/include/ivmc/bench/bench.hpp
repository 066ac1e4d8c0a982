// ivmc bench: the shared-memory ring against its baselines, measured in one run between two
// real processes (memcpy, a cache-line ping-pong, raw eventfd, TCP loopback, UNIX sockets,
// iceoryx).
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
  double seconds_per_point = 0.25;     // each throughput point runs this long
  int repeats = 5;                     // runs per figure (medians; see TransportResult::near)
  std::uint32_t ring_bytes = 2u << 20; // fastest here: 64 KiB records need several in flight
  int rtt_iterations = 20000;
  int cpu_parent = 0;    // the measuring process
  int cpu_child = 1;     // the peer process
  bool progress = false; // one line per point on stderr
};

struct TransportResult {
  std::string transport; // "ring", "tcp", "unix", "iceoryx"
  std::string mode;      // "poll", "block", "zero_copy" (iceoryx: loan, write in place, publish)
  std::size_t size = 0;
  double gbps = 0;
  double msgs_per_s = 0;
  std::optional<double> rtt_p50_ns; // measured at 64 B only
  // The vCPU placement changes under the benchmark (the cache-line round trip moves 3-6x
  // between seconds), so every run of a point is preceded by a cache-line probe. A point's
  // figures are the medians over its runs at near placement (probe within 1.5x of the run's
  // fastest probe), or over all runs when none was near.
  double placement_rtt_ns = 0; // median probe of the runs used
  bool near = false;
  int runs_used = 0;
  double gbps_all = 0, msgs_per_s_all = 0; // medians over every run, whatever the placement
};

struct BenchReport {
  std::string placement;       // which CPUs the two processes ran on
  double near_rtt_ns = 0;      // the fastest cache-line probe of the run: "near" is within 1.5x
  double cacheline_rtt_ns = 0; // p50 round trip of one cache line between the processes
  double eventfd_rtt_ns = 0;   // p50 round trip of a raw eventfd ping-pong (blocking baseline)
  // Ring RTT over its baseline, the median of per-round ratios taken in the same processes.
  double poll_rtt_ratio = 0;    // polled 64 B ring RTT / cache-line RTT
  double block_rtt_ratio = 0;   // blocking 64 B ring RTT / raw eventfd RTT
  std::string iceoryx;          // "measured", or "skipped: <why>" (then no iceoryx rows)
  double iceoryx_rtt_ns = 0;    // iceoryx 64 B round trip p50 (near rounds)
  double iceoryx_rtt_ratio = 0; // iceoryx 64 B RTT / cache-line RTT (paired rounds)
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
