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

// Where one process of a run was, and how much of the run it had its CPU. On a machine whose
// CPUs are shared (other processes, other guests), this is what a figure depends on first.
struct ProcessPlacement {
  int cpu_start = -1, cpu_end = -1; // sched_getcpu() when its part began and ended
  double cpu_share = 0;             // time it ran / wall time of its part (1: had its CPU)
  double wait_share = 0;            // time it was runnable but waited behind others / wall
  long involuntary = 0;             // involuntary context switches (preempted by others)
};

// One throughput run as measured, with what the machine was doing meanwhile.
struct RunRecord {
  std::string transport, mode;
  std::size_t size = 0;
  double gbps = 0, msgs_per_s = 0;
  double probe_rtt_ns = 0;          // the cache-line probe taken just before the run
  ProcessPlacement measuring, peer; // the receiver (measuring) and the sender (peer)
  double steal_share = -1;          // host steal on the two CPUs / (2 x wall); -1 unreadable
  std::string speed; // "full": both processes had their CPUs (each waited < 10 % of the run
                     // behind other processes, host steal < 5 %); "shared" otherwise
  bool near = false; // the probe was within 1.5x of the run's fastest (vCPUs placed close)
  // A run's speed mode is the pair (speed, near): "full/near", "full/far", "shared/near",
  // "shared/far" (speed_mode in placement.hpp). BENCHMARKS.md, "Issue 18: the two speed modes".
};

// One CPU as the guest sees it, and the clock its core ran at, measured.
struct CpuDescription {
  int cpu = -1;
  int core_id = -1, package_id = -1;
  std::string core_siblings;        // CPUs on the same core (SMT threads), thread_siblings_list
  std::string l2_shared, l2_size;   // CPUs sharing its L2, and its size
  std::string llc_shared, llc_size; // CPUs sharing its last-level cache, and its size
  double reported_mhz = 0;          // cpufreq, else /proc/cpuinfo "cpu MHz"
  double measured_ghz_start = 0, measured_ghz_end = 0; // the core clock, measured (placement.hpp)
};

struct MachineReport {
  std::string model_name; // /proc/cpuinfo "model name" (lscpu's Model name)
  std::string hypervisor; // "" on bare metal, else its vendor (KVM, Xen, ...)
  int online_cpus = 0;
  std::vector<CpuDescription> cpus; // the two the processes were pinned to
  std::string topology;             // the two CPUs' sharing, in a sentence
  double load_start[3] = {-1, -1, -1}, load_end[3] = {-1, -1, -1}; // /proc/loadavg
  double steal_share = -1; // host steal on the two CPUs over the whole bench
};

struct TransportResult {
  std::string transport; // "ring", "tcp", "unix", "iceoryx"
  std::string mode;      // "poll", "poll_crc" (polled, every record checked with CRC32C),
                         // "block", "zero_copy" (iceoryx: loan, write in place, publish)
  std::size_t size = 0;
  double gbps = 0;
  double msgs_per_s = 0;
  std::optional<double> rtt_p50_ns; // measured at 64 B only
  // Two things move a figure between runs: the vCPU placement (the cache-line round trip moves
  // 3-6x between seconds on some hosts), and CPU sharing (another process or guest running on
  // one of the two CPUs: a polled transport then loses what its process waits). Every run of a
  // point is preceded by a cache-line probe and records both processes' CPU shares
  // (RunRecord). A point's figures are the medians over its runs that had both CPUs to
  // themselves (speed "full") at near placement (probe within 1.5x of the run's fastest
  // probe); failing that over its full runs, its near runs, or all runs, in that order.
  double placement_rtt_ns = 0; // median probe of the runs used
  bool near = false;           // the runs used were at near placement
  bool full = false;           // the runs used had both CPUs (speed "full")
  int runs_used = 0, runs_full = 0, runs = 0;
  double wait_share = 0; // median over the runs used of the larger of the two waits
  double gbps_all = 0, msgs_per_s_all = 0; // medians over every run, whatever the placement
};

struct BenchReport {
  std::string placement;       // which CPUs the two processes ran on
  double near_rtt_ns = 0;      // the fastest cache-line probe of the run: "near" is within 1.5x
  double cacheline_rtt_ns = 0; // p50 round trip of one cache line between the processes
  double eventfd_rtt_ns = 0;   // p50 round trip of a raw eventfd ping-pong (blocking baseline)
  // Ring RTT over its baseline, the median of per-round ratios taken in the same processes.
  double poll_rtt_ratio = 0;      // polled 64 B ring RTT / cache-line RTT
  double block_rtt_ratio = 0;     // blocking 64 B ring RTT / raw eventfd RTT
  std::string iceoryx;            // "measured", or "skipped: <why>" (then no iceoryx rows)
  double iceoryx_rtt_ns = 0;      // iceoryx 64 B round trip p50 (near rounds)
  double iceoryx_rtt_ratio = 0;   // iceoryx 64 B RTT / cache-line RTT (paired rounds)
  double zero_copy_rtt_ratio = 0; // zero-copy 64 B ring RTT / cache-line RTT (paired rounds)
  // Issue 18: a payload of up to 56 bytes takes one cache line (wire.hpp). 48 B is the size
  // the packed layout of wire version 1 placed across two lines most often (6 times in 8).
  std::vector<std::size_t> small_rtt_sizes = {48, 56};
  std::map<std::size_t, double> poll_small_rtt_ratio; // by size: polled RTT / cache-line RTT
  double crc_rtt_ratio = 0;               // polled 64 B RTT with record checks / cache-line RTT
  double crc_rtt_ns = 0, poll_rtt_ns = 0; // the two 64 B round trips' p50 (near rounds)
  // Issue 18: the bare two-line ring (bench/src/bare_ring.hpp: the channel's 64 B record format
  // written inline, nothing else), in the same rounds as the polled 64 B ring and its probe.
  double bare_rtt_ns = 0;              // its 64 B round trip p50 (near rounds)
  double poll_over_bare_rtt_ratio = 0; // polled 64 B ring RTT / bare ring RTT (paired rounds)
  double bare_rtt_ratio = 0;           // bare ring RTT / cache-line RTT (paired rounds)
  // 64 KiB polled (copying) GB/s / memcpy 1 MiB, over the runs of each speed mode present.
  std::map<std::string, double> poll_64k_over_memcpy_by_mode;
  MachineReport machine;                     // the CPUs, their sharing and clocks, load, steal
  std::vector<RunRecord> runs;               // every throughput run, in the order measured
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
