// Baseline measurements (internal to bench/).
#pragma once

#include "harness.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ivmc::bench {

struct PairCpus {
  int parent = 0; // the measuring process
  int child = 1;
};

struct Throughput {
  double gbps = 0;
  double msgs_per_s = 0;
  PairPlacement placement; // where the two processes ran meanwhile
};

// Round trips of a transport and of its baseline, per round, taken together in the same two
// processes (a ratio is only meaningful between figures taken together).
struct PairedRtt {
  std::vector<double> ring_ns, baseline_ns; // ring_ns: the transport measured, ring or not
  std::vector<double> bare_ns; // the bare ring's (bare_ring.hpp), same rounds; polled 64 B only
};

enum class SocketKind { tcp_loopback, unix_stream };

double memcpy_gbps(std::size_t size, double seconds);

// Round-trip probes, split into the two roles so that an experiment can run them in the same
// pair of processes as the ring, interleaved with it (the vCPU placement drifts over seconds;
// a ratio is only meaningful between figures taken together). Create before fork; each side
// then calls its role with the same iteration counts in the same order.
class LineProbe { // one cache line each way through MAP_SHARED memory
public:
  LineProbe();
  ~LineProbe();
  std::vector<double> parent_round(int iterations); // round-trip times in ns
  void child_round(int iterations);

private:
  void* page_;
  std::uint64_t seq_ = 0;
};

class EventfdProbe { // a raw eventfd ping-pong: the floor under any blocking notification
public:
  EventfdProbe();
  ~EventfdProbe();
  std::vector<double> parent_round(int iterations);
  void child_round(int iterations);

private:
  int to_child_, to_parent_;
};
Throughput socket_throughput(SocketKind kind, const PairCpus& cpus, std::size_t size,
                             double seconds);
double socket_rtt_ns(SocketKind kind, const PairCpus& cpus, int iterations);

} // namespace ivmc::bench
