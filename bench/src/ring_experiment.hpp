// The ring's own measurements: throughput and round trips of the channel between two pinned
// processes through the ivshmem server, in four modes: "poll" (polling policy, send and recv),
// "poll_crc" (the same with a CRC32C on every record, ChannelConfig::record_crc32c), "block"
// (on_demand: the receiver sleeps until rung) and "zero_copy" (polling, through reserve/commit
// and peek/release). Internal to bench/.
#pragma once

#include "baselines.hpp"

#include "ivmc/bench/bench.hpp"
#include "ivmc/kvm/host_platform.hpp"

#include <cstddef>
#include <string>

namespace ivmc::bench {

class RingExperiment {
public:
  RingExperiment(const BenchOptions& options, const PairCpus& cpus, kvm::HostPlatform& platform,
                 std::string socket_path);

  // The peer sends `size`-byte messages for the options' seconds per point; the measuring
  // process receives them (recv copies each out; zero_copy reads every byte in place).
  Throughput throughput(const std::string& mode, std::size_t size);
  // Round trips of `size`-byte messages, interleaved round by round with the baseline they are
  // judged against (cache-line probe when polling, raw eventfd when blocking) in the same two
  // processes, so the placement of the moment applies to both. One warm-up round is dropped.
  // Polled 64 B round trips also take turns with the bare ring's (bare_ring.hpp), the floor
  // for a ring of this format.
  PairedRtt rtt(const std::string& mode, std::size_t size = 64);

private:
  kvm::EndpointOptions endpoint(const std::string& mode) const;
  template <class P, class C>
  void run(const std::string& what, const std::string& mode, P parent_role, C child_role,
           PairPlacement* placement = nullptr);

  const BenchOptions& options_;
  PairCpus cpus_;
  kvm::HostPlatform& platform_;
  std::string socket_path_;
};

} // namespace ivmc::bench
