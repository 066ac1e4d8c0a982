// An in-process platform for tests: two endpoints in one process (two threads), memory from the
// heap, doorbells made of a mutex and condition variable, real or hand-driven time.
// Cross-process tests use the real host platform (backends/kvm) instead.
#pragma once

#include "ivmc/core/platform.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>

namespace ivmc::test {

class SteadyClock final : public Clock {
public:
  Nanos now() override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

// Time that moves only when told to (or by `step` at every reading, so loops always progress).
class ManualClock final : public Clock {
public:
  explicit ManualClock(Nanos step = 0) : step_(step) {}
  Nanos now() override { return t_.fetch_add(step_, std::memory_order_relaxed); } // a counter
  void advance(Nanos d) { t_.fetch_add(d, std::memory_order_relaxed); }           // a counter
private:
  std::atomic<Nanos> t_{1'000'000'000};
  Nanos step_;
};

// Sticky per-reason doorbells between two endpoints of one process.
class LocalDoorbellPair {
public:
  class End final : public Doorbell {
  public:
    void ring(Wake reason) override { peer_->post(reason); }
    WaitResult wait(Wake reason, Nanos timeout) override {
      std::unique_lock lock(mutex_);
      auto& pending = pending_[static_cast<int>(reason)];
      if (!cv_.wait_for(lock, std::chrono::nanoseconds(timeout), [&] { return pending > 0; })) {
        return WaitResult::timed_out;
      }
      pending = 0;
      return WaitResult::rung;
    }
    std::uint64_t rings_received(Wake reason) const {
      std::lock_guard lock(mutex_);
      return received_[static_cast<int>(reason)];
    }

  private:
    friend class LocalDoorbellPair;
    void post(Wake reason) {
      {
        std::lock_guard lock(mutex_);
        ++pending_[static_cast<int>(reason)];
        ++received_[static_cast<int>(reason)];
      }
      cv_.notify_all();
    }
    End* peer_ = nullptr;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::array<std::uint64_t, 2> pending_{}, received_{};
  };

  LocalDoorbellPair() {
    a.peer_ = &b;
    b.peer_ = &a;
  }
  End a, b;
};

// A doorbell that rings nobody and never sleeps (fuzzing, single-threaded tests).
class NullDoorbell final : public Doorbell {
public:
  void ring(Wake) override {}
  WaitResult wait(Wake, Nanos) override { return WaitResult::timed_out; }
};

// Heap memory aligned like a page of shared memory.
struct AlignedArea {
  explicit AlignedArea(std::size_t n)
      : bytes(static_cast<std::byte*>(std::aligned_alloc(4096, (n + 4095) / 4096 * 4096))),
        size(n) {}
  ~AlignedArea() { std::free(bytes); }
  AlignedArea(const AlignedArea&) = delete;
  AlignedArea& operator=(const AlignedArea&) = delete;
  SharedRegion region() const { return {bytes, size}; }
  std::byte* bytes;
  std::size_t size;
};

} // namespace ivmc::test
