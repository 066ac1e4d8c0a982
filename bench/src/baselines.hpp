// Baseline measurements (internal to bench/).
#pragma once

#include <cstddef>

namespace ivmc::bench {

struct PairCpus {
  int parent = 0; // the measuring process
  int child = 1;
};

struct Throughput {
  double gbps = 0;
  double msgs_per_s = 0;
};

enum class SocketKind { tcp_loopback, unix_stream };

double memcpy_gbps(std::size_t size, double seconds);
double cacheline_rtt_ns(const PairCpus& cpus, int iterations);
double eventfd_rtt_ns(const PairCpus& cpus, int iterations);
Throughput socket_throughput(SocketKind kind, const PairCpus& cpus, std::size_t size,
                             double seconds);
double socket_rtt_ns(SocketKind kind, const PairCpus& cpus, int iterations);

} // namespace ivmc::bench
