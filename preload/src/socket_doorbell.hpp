// The doorbell of a ring connection is its own TCP socket. Once the ring carries the
// connection's bytes, the kernel connection carries only one-byte rings: 'D' (data for you)
// and 'S' (space for you). So the application's own fd becomes readable when the peer rings,
// and its poll/epoll/select wake on the kernel's readiness with no extra fd in its sets; and
// when the peer dies (kill -9) the kernel closes the connection, which every waiter sees at
// once (EOF or ECONNRESET): no heartbeat is needed.
#pragma once

#include "ivmc/core/platform.hpp"

#include <atomic>
#include <cstdint>
#include <functional>

namespace ivmc::preload {

class SocketDoorbell final : public ivmc::Doorbell {
public:
  // `on_lost` runs (once) when the kernel connection ends or carries a byte that is not a
  // ring: the connection's channel is marked dead there.
  explicit SocketDoorbell(int fd) : fd_(fd) {}
  void set_fd(int fd) { fd_.store(fd, std::memory_order_relaxed); } // relaxed: an fd number
  int fd() const { return fd_.load(std::memory_order_relaxed); }    // relaxed: an fd number
  void on_lost(std::function<void()> f) { on_lost_ = std::move(f); }

  // Rings nothing from now on: the connection stays kernel TCP, whose stream is the
  // application's (a channel dropped there must not write its last rings into it).
  void silence() { silent_.store(true, std::memory_order_relaxed); } // relaxed: read by ring()
  void ring(Wake reason) override;
  WaitResult wait(Wake reason, Nanos timeout) override;

  // Reads the rings waiting in the socket now, without blocking; false once it ended.
  bool drain();
  bool lost() const { return lost_.load(std::memory_order_acquire); } // pairs with drain()
  // The kernel connection was reset (not closed in order): ECONNRESET rather than EOF.
  bool reset() const { return reset_.load(std::memory_order_acquire); } // pairs with drain()

private:
  std::atomic<int> fd_;
  std::function<void()> on_lost_;
  // Rings read from the socket and not yet consumed by a wait, by reason. Relaxed: counts;
  // the core re-checks the ring itself after every wake.
  std::atomic<std::uint32_t> pending_[2] = {0, 0};
  std::atomic<bool> lost_{false};   // release in drain: on_lost_ ran before it reads true
  std::atomic<bool> reset_{false};  // release in drain, with lost_
  std::atomic<bool> silent_{false}; // relaxed: set and read by the connection's own thread
};

} // namespace ivmc::preload
