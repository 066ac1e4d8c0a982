// iceoryx 2.0, the shared-memory IPC library a user would pick instead of the ring, as a
// baseline measured in the same run and the same way as the ring. Internal to bench/.
//
// A publisher and a subscriber in two fresh processes pinned like the ring's (the measuring one
// on PairCpus::parent), through an iox-roudi the baseline starts and stops. Publishers loan a
// chunk, write it in place and publish; subscribers take, read in place and release: iceoryx's
// zero-copy use. Subscribers poll take() with one PAUSE per empty poll, as the ring's polling
// consumer does. Payloads of 256 bytes or more are loaned 64-byte aligned, as the ring aligns
// them; smaller ones with iceoryx's default alignment.
//
// Built when CMake finds iceoryx_posh (iceoryx_baseline.cpp); otherwise iceoryx_absent.cpp
// says so and the bench has no iceoryx rows.
#pragma once

#include "baselines.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ivmc::bench {

class IceoryxBaseline {
public:
  virtual ~IceoryxBaseline() = default; // stops iox-roudi
  // 64 B round trips: a request on one topic, the response (a copy of it) on another. Rounds
  // of `iterations` alternate with a cache-line ping-pong of as many round trips in the same
  // two processes (PairedRtt::baseline_ns), like the ring's; one warm-up round is dropped.
  virtual PairedRtt rtt(int rounds, int iterations) = 0;
  // The peer publishes `size`-byte messages (each copied into its chunk from a prepared
  // message, as the ring's send copies) for `seconds`; the measuring process takes each and
  // reads every byte in place. Blocking publisher, so nothing is dropped; the subscriber's
  // queue holds in-flight bytes like the ring's (ring bytes / size, at most 256 chunks).
  virtual Throughput throughput(std::size_t size, double seconds) = 0;
};

// Whether this build has iceoryx (find_package(iceoryx_posh) succeeded at configure time).
bool iceoryx_built();

// Starts iox-roudi with memory pools for `sizes` and returns the baseline; null with `why_not`
// (for the report) when iceoryx is not built in or RouDi does not start.
std::unique_ptr<IceoryxBaseline> start_iceoryx(const PairCpus& cpus,
                                               const std::vector<std::size_t>& sizes,
                                               std::uint32_t in_flight_bytes, std::string& why_not);

} // namespace ivmc::bench
