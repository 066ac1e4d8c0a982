// The library's counters: what went through rings and what stayed on kernel TCP. Written at
// exit (one line per process, appended) to the file IVMC_PRELOAD_STATS names, so that a test
// can check that an unmodified program's bytes really went through the ring.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

namespace ivmc::preload {

struct Stats {
  // Every counter is relaxed: counts order nothing, and are read once at exit.
  std::atomic<std::uint64_t> ring_connections{0};    // connections carried by a ring
  std::atomic<std::uint64_t> tcp_connections{0};     // TCP connections left to the kernel
  std::atomic<std::uint64_t> fallbacks{0};           // ring set-ups that failed (warned)
  std::atomic<std::uint64_t> ring_bytes_sent{0};     // application bytes written into rings
  std::atomic<std::uint64_t> ring_bytes_received{0}; // application bytes read from rings
};

Stats& stats();
inline void count(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) {
  counter.fetch_add(n, std::memory_order_relaxed); // a count only
}

// One line on stderr, "ivmc-preload: <what>", for a connection that fell back to TCP.
void warn(std::string_view what);

} // namespace ivmc::preload
