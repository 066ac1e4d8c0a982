// A ring connection's doorbell over its own TCP socket: see socket_doorbell.hpp.
#include "socket_doorbell.hpp"

#include "real.hpp"

#include <cerrno>
#include <cstddef>

namespace ivmc::preload {

void SocketDoorbell::ring(Wake reason) {
  if (silent_.load(std::memory_order_relaxed)) return; // relaxed: see silence()
  const char byte = reason == Wake::data ? 'D' : 'S';
  // Never blocks: the peer drains rings whenever it wakes, so the socket buffer holds few. A
  // failure means the connection is gone, which the peer learns from the kernel.
  ssize_t n;
  do {
    n = real::fn().send(fd(), &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
}

bool SocketDoorbell::drain() {
  if (lost()) return false;
  char buffer[256];
  for (;;) {
    const ssize_t n = real::fn().recv(fd(), buffer, sizeof buffer, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    bool ended = n <= 0;
    if (n < 0 && errno == ECONNRESET) reset_.store(true, std::memory_order_release); // w/ lost_
    for (ssize_t i = 0; i < n; ++i) {
      if (buffer[i] == 'D') {
        pending_[0].fetch_add(1, std::memory_order_relaxed); // a count
      } else if (buffer[i] == 'S') {
        pending_[1].fetch_add(1, std::memory_order_relaxed); // a count
      } else {
        // Not a ring: the peer broke the protocol. Hostile input ends the connection.
        reset_.store(true, std::memory_order_release); // published with lost_
        ended = true;
        break;
      }
    }
    if (ended) {
      if (!lost_.exchange(true, std::memory_order_acq_rel) && on_lost_) on_lost_(); // once
      return false;
    }
    if (n < static_cast<ssize_t>(sizeof buffer)) return true;
  }
}

WaitResult SocketDoorbell::wait(Wake reason, Nanos timeout) {
  auto& pending = pending_[static_cast<std::size_t>(reason)];
  for (;;) {
    // Relaxed: a count; the core re-checks the ring after we return.
    if (pending.load(std::memory_order_relaxed) != 0) {
      pending.store(0, std::memory_order_relaxed); // several rings collapse into one wake
      return WaitResult::rung;
    }
    if (lost()) return WaitResult::rung; // the core finds the channel marked dead
    pollfd p{fd(), POLLIN, 0};
    const int ms = timeout <= 0 ? 0 : static_cast<int>((timeout + 999'999) / 1'000'000);
    const int ready = real::fn().poll(&p, 1, ms);
    if (ready < 0 && errno == EINTR) return WaitResult::timed_out; // the core re-checks
    if (ready < 0) return WaitResult::failed;
    if (ready == 0) return WaitResult::timed_out;
    drain();
    if (pending.load(std::memory_order_relaxed) == 0 && !lost()) {
      // Only the other reason's ring (or nothing yet): let the core re-check its ring.
      return WaitResult::timed_out;
    }
  }
}

} // namespace ivmc::preload
