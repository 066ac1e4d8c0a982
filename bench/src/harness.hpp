// Measurement plumbing shared by the benchmark's experiments: two pinned processes, timers,
// medians. Internal to bench/.
#pragma once

#include "ivmc/bench/bench.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ivmc::bench {

// Wall time in seconds (steady clock), for throughput intervals.
inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Per-operation timing with the TSC: reading it costs ~10 ns, where clock_gettime under a
// paravirtual clock costs several times that and would swamp a 100 ns round trip.
class TscTimer {
public:
  TscTimer(); // calibrates against the steady clock (~20 ms)
  static std::uint64_t read() {
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#else
    return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
  }
  double to_ns(std::uint64_t ticks) const {
    return static_cast<double>(ticks) * ns_per_tick_;
  }

private:
  double ns_per_tick_ = 1.0;
};

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Reads every byte of [data, data + n) once, as a receiver that uses its message would, and
// returns a value depending on all of them (so that no read can be left out).
std::uint64_t touch_bytes(const std::byte* data, std::size_t n);

// Pins the calling process to one CPU; false if that CPU is not available.
bool pin_to_cpu(int cpu);
int online_cpus();

// Where the two processes of a run were, and what the host took from their CPUs meanwhile.
struct PairPlacement {
  ProcessPlacement measuring, peer;
  double steal_share = -1; // steal on both CPUs / (2 x the measuring part's wall time)
};

// Runs `child` in a forked process pinned to `child_cpu` and `parent` here on `parent_cpu`.
// The child's return value is its exit status; a child still running `grace_s` after the
// parent finished is killed, and the child dies with this process (interrupted or killed).
// Throws if the child failed, naming `what`. With `placement`, says
// where each part ran and how much of its time it had its CPU.
void run_pair(const std::string& what, int parent_cpu, int child_cpu,
              const std::function<void()>& parent, const std::function<int()>& child,
              double grace_s = 10, PairPlacement* placement = nullptr);

// The child side's failures end the child with this status and a message on stderr.
[[noreturn]] void child_fail(const std::string& what);

} // namespace ivmc::bench
