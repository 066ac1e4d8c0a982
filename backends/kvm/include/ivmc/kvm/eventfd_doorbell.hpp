// ivmc::Doorbell over ivshmem eventfds: ring() writes the remote peer's eventfd for a vector,
// wait() sleeps on one of this peer's own eventfds. Eventfd counters make rings sticky, as the
// Doorbell contract requires: a ring before the wait makes the wait return at once.
#pragma once

#include "ivmc/core/platform.hpp"
#include "ivmc/posix/unique_fd.hpp"

#include <array>
#include <atomic>
#include <cstdint>

namespace ivmc::kvm {

class IvshmemPeer;

// Which ivshmem vector carries each wake-up reason.
struct WakeVectors {
  unsigned data = 0;
  unsigned space = 1;
};

class EventfdDoorbell final : public ivmc::Doorbell {
public:
  // `ring_remote`: the vectors of peer `remote_id` that ring() writes; `wait_own`: this peer's
  // vectors that wait() sleeps on. The two reasons need distinct vectors on each side, or a
  // sender and a receiver would consume each other's wake-ups. The fds are dup()ed: the doorbell
  // stays valid (never a recycled fd number) when the peer leaves or `peer` is destroyed.
  // Throws IvshmemError if the remote peer or a vector is unknown.
  EventfdDoorbell(const IvshmemPeer& peer, std::uint16_t remote_id, WakeVectors ring_remote,
                  WakeVectors wait_own);

  // One write() of 1 to the remote eventfd. Never blocks, never throws.
  void ring(Wake reason) override;

  // poll() on the own eventfd then read() to reset it: two syscalls when it sleeps. timeout is
  // in ns; <= 0 only checks (never waits forever: a "remaining time" gone negative must not
  // block), pass a huge value to wait without practical limit. EINTR is retried with the time
  // left. `failed` after declare_lost() or when a syscall fails (see last_errno()).
  WaitResult wait(Wake reason, Nanos timeout) override;
  // poll() only: a ring that ends the wait stays in the counter until clear(reason) reads it,
  // off the path from the ring to the waiter's reply (the channel clears before it sleeps).
  WaitResult wait_uncleared(Wake reason, Nanos timeout) override;
  // One read() that resets the counter, only if a wait_uncleared() left a ring there.
  void clear(Wake reason) override;

  // The platform's notice that the remote peer is gone: pending and future wait()s return
  // `failed`. Safe from any thread.
  void declare_lost();

  std::uint64_t ring_count() const {
    return rings_.load(std::memory_order_relaxed); // relaxed: a statistic, orders nothing
  }
  std::uint64_t wakeup_count() const {
    return wakeups_.load(std::memory_order_relaxed); // relaxed: a statistic, orders nothing
  }
  // errno of the last failed syscall (0 if none): why ring() could not ring or wait() failed.
  int last_errno() const {
    return last_errno_.load(std::memory_order_relaxed); // relaxed: diagnostic only
  }

private:
  static std::size_t index(Wake reason) { return static_cast<std::size_t>(reason); }
  WaitResult wait_on(Wake reason, Nanos timeout, bool reset);

  std::array<posix::UniqueFd, 2> ring_fds_; // by Wake: the remote peer's eventfds
  std::array<posix::UniqueFd, 2> wait_fds_; // by Wake: this peer's eventfds
  // relaxed: counts rings for statistics; the eventfd write itself is the synchronisation.
  std::atomic<std::uint64_t> rings_{0};
  // relaxed: counts wake-ups (wait() returning rung) for statistics only.
  std::atomic<std::uint64_t> wakeups_{0};
  // relaxed: the errno value is self-contained diagnostic data, read without other state.
  std::atomic<int> last_errno_{0};
  // release/acquire: a waiter that sees `lost` also sees everything the platform did before
  // declaring it (e.g. marking the peer dead).
  std::atomic<bool> lost_{false};
  // By Wake: a wait_uncleared() returned `rung` and left the counter for clear(). Each reason
  // has one waiting thread (the channel's sender or receiver); relaxed: that thread's own note.
  std::array<std::atomic<bool>, 2> uncleared_{};
};

} // namespace ivmc::kvm
