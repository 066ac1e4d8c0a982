#include "harness.hpp"

#include "cleanup_guard.hpp"
#include "placement.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

namespace ivmc::bench {

TscTimer::TscTimer() {
  const double t0 = now_s();
  const std::uint64_t c0 = read();
  while (now_s() - t0 < 0.02) {
  }
  const double t1 = now_s();
  const std::uint64_t c1 = read();
  ns_per_tick_ = (t1 - t0) * 1e9 / static_cast<double>(c1 - c0);
}

namespace {
using Lanes = std::uint64_t __attribute__((vector_size(64))); // one cache line
} // namespace

// As wide as the CPU reads (one build, dispatched at load time): with 8-byte loads, reading a
// message in place ran at 19 GB/s from L1, slower than the ring delivers it, and a receiver
// that uses its data would not be that slow.
__attribute__((target_clones("avx512f", "avx2", "default"))) std::uint64_t
touch_bytes(const std::byte* data, std::size_t n) {
  Lanes a{}, b{};
  std::size_t i = 0;
  for (; i + 128 <= n; i += 128) { // two independent lines per step
    Lanes x, y;
    std::memcpy(&x, data + i, sizeof x);
    std::memcpy(&y, data + i + 64, sizeof y);
    a ^= x;
    b ^= y;
  }
  a ^= b;
  std::uint64_t r = 0;
  for (int k = 0; k < 8; ++k) r ^= a[k];
  for (; i + 8 <= n; i += 8) { // a small message, or the tail of a large one
    std::uint64_t w;
    std::memcpy(&w, data + i, sizeof w);
    r ^= w;
  }
  for (; i < n; ++i) r += static_cast<std::uint64_t>(data[i]);
  return r;
}

bool pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

int online_cpus() {
  return static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
}

void child_fail(const std::string& what) {
  std::fprintf(stderr, "ivmc bench (peer process): %s\n", what.c_str());
  std::fflush(stderr);
  _exit(3);
}

void run_pair(const std::string& what, int parent_cpu, int child_cpu,
              const std::function<void()>& parent, const std::function<int()>& child,
              double grace_s, PairPlacement* placement) {
  // The child's placement comes back through a shared page (written before it exits).
  ProcessPlacement* child_placement = nullptr;
  if (placement) {
    void* p = mmap(nullptr, sizeof(ProcessPlacement), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error(what + ": mmap failed");
    child_placement = new (p) ProcessPlacement;
  }
  struct Unmap {
    void* p;
    ~Unmap() {
      if (p) munmap(p, sizeof(ProcessPlacement));
    }
  } unmap{child_placement};
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(what + ": fork failed: " + std::strerror(errno));
  if (pid == 0) {
    // A peer outliving the bench (interrupted, killed) would spin on its CPU for good: the
    // cache-line probe's peer waits without a deadline.
    if (!die_with_parent(SIGKILL)) _exit(3);
    if (child_cpu >= 0) pin_to_cpu(child_cpu);
    int rc = 3;
    try {
      const ProcessSample from = sample_process();
      rc = child();
      if (child_placement) *child_placement = placement_between(from, sample_process());
    } catch (const std::exception& e) {
      child_fail(what + ": " + e.what());
    }
    std::fflush(nullptr);
    _exit(rc); // no destructors: they belong to the parent's objects this process inherited
  }
  if (parent_cpu >= 0) pin_to_cpu(parent_cpu);
  std::string parent_error;
  const double steal_from = steal_ns(parent_cpu) + steal_ns(child_cpu);
  const ProcessSample from = sample_process();
  try {
    parent();
  } catch (const std::exception& e) {
    parent_error = e.what();
  }
  const ProcessSample to = sample_process();
  const double steal_to = steal_ns(parent_cpu) + steal_ns(child_cpu);
  // Reap the child; a child that outlives the parent's part by `grace_s` is stuck.
  int status = 0;
  const double deadline = now_s() + (parent_error.empty() ? grace_s : 1.0);
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (now_s() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      throw std::runtime_error(what + ": the peer process hung and was killed" +
                               (parent_error.empty() ? "" : " (" + parent_error + ")"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!parent_error.empty()) throw std::runtime_error(what + ": " + parent_error);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error(what + ": the peer process failed (status " + std::to_string(status) +
                             ")");
  }
  if (placement) {
    placement->measuring = placement_between(from, to);
    placement->peer = *child_placement; // written before the child exited, which we reaped
    placement->steal_share = steal_from < 0 || steal_to < 0 || to.t <= from.t
                                 ? -1
                                 : (steal_to - steal_from) / (2e9 * (to.t - from.t));
  }
}

} // namespace ivmc::bench
