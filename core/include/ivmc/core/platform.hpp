// The platform interfaces the core is written against.
//
// A platform (sim/, backends/kvm/, backends/xen/) implements these and nothing in core/ knows
// which one it runs on. They are deliberately small: time, a piece of shared memory, and a
// doorbell. Membership sources and the remote transport join them with the link layer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace ivmc {

using Nanos = std::int64_t; // a duration or a point on a Clock, in nanoseconds

// Monotonic time. Real platforms read CLOCK_MONOTONIC; the simulation reads SimGrid's clock.
class Clock {
public:
  virtual ~Clock() = default;
  virtual Nanos now() = 0;
};

// Why a doorbell is rung. Each endpoint waits for the two reasons independently, so a thread
// blocked in send (waiting for space) and one blocked in recv (waiting for data) never consume
// each other's wake-ups. Platforms map the reasons to two ivshmem vectors / event channels.
enum class Wake : std::uint8_t { data = 0, space = 1 };

enum class WaitResult : std::uint8_t {
  rung,      // the peer rang this reason's doorbell (possibly before the wait started)
  timed_out, // the timeout passed without a ring
  failed     // the platform lost the doorbell (peer gone, fd closed); details in the platform
};

// One endpoint's doorbell pair: ring() wakes the *peer's* waiter for a reason, wait() blocks on
// *this* endpoint's doorbell for a reason.
//
// Contract: rings are sticky. A ring() that happens before the matching wait() makes that wait()
// return `rung` at once (eventfd counters and Xen pending bits behave this way), so the core's
// "set request flag, re-check, then wait" sequence never loses a wake-up. Several rings may
// collapse into one wake-up; spurious wake-ups are allowed: the core always re-checks the ring.
class Doorbell {
public:
  virtual ~Doorbell() = default;
  virtual void ring(Wake reason) = 0;
  virtual WaitResult wait(Wake reason, Nanos timeout) = 0;

  // The channel's own sleep, in two steps, for doorbells whose reset costs a system call (an
  // eventfd read): wait_uncleared() is wait() but may leave the ring that ended it pending, and
  // clear() forgets the rings that came before it. The channel clears before it sets its request
  // flag and re-checks the ring, so the reset happens before it sleeps again, not between a ring
  // and the waiter's reply (issue 18: one system call less per wake-up on that path). A ring
  // after clear() is sticky as ever. Doorbells whose wait() resets for free keep the defaults.
  virtual WaitResult wait_uncleared(Wake reason, Nanos timeout) { return wait(reason, timeout); }
  virtual void clear(Wake /*reason*/) {}
};

// A contiguous piece of memory shared with the peer. Everything in it is hostile input.
struct SharedRegion {
  std::byte* base = nullptr;
  std::size_t size = 0;

  std::span<std::byte> bytes() const { return {base, size}; }
};

} // namespace ivmc
