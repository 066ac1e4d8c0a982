// ivmc::Doorbell over interdomain event channels: see
// include/ivmc/xen/event_channel_doorbell.hpp.
#include "ivmc/xen/event_channel_doorbell.hpp"

#include "ivmc/posix/clock.hpp"
#include "ivmc/xen/error.hpp"

extern "C" {
#include <xenevtchn.h>
}

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "format.hpp"

namespace ivmc::xen {

namespace {

const char* reason_name(int index) {
  return index == 0 ? "data" : "space";
}

xenevtchn_handle* open_handle(int index) {
  xenevtchn_handle* h = ::xenevtchn_open(nullptr, 0);
  if (h == nullptr) {
    const int error = errno;
    throw XenError(detail::format("xenevtchn_open ({} doorbell): {} (is this a Xen domain with the "
                                  "xen-evtchn module loaded?)",
                                  reason_name(index), std::strerror(error)));
  }
  return h;
}

} // namespace

std::unique_ptr<EventChannelDoorbell> EventChannelDoorbell::offer(std::uint32_t peer) {
  std::unique_ptr<EventChannelDoorbell> bell(new EventChannelDoorbell);
  for (int i = 0; i < 2; ++i) {
    bell->handles_[i] = open_handle(i);
    const xenevtchn_port_or_error_t port = ::xenevtchn_bind_unbound_port(bell->handles_[i], peer);
    if (port < 0) {
      const int error = errno;
      throw XenError(detail::format("xenevtchn_bind_unbound_port (domain {}, {} doorbell): {}",
                                    peer, reason_name(i), std::strerror(error)));
    }
    bell->ports_[i] = static_cast<std::uint32_t>(port);
  }
  return bell;
}

std::unique_ptr<EventChannelDoorbell> EventChannelDoorbell::connect(std::uint32_t offerer,
                                                                    std::uint32_t data_port,
                                                                    std::uint32_t space_port) {
  std::unique_ptr<EventChannelDoorbell> bell(new EventChannelDoorbell);
  const std::uint32_t remote[2] = {data_port, space_port};
  for (int i = 0; i < 2; ++i) {
    bell->handles_[i] = open_handle(i);
    const xenevtchn_port_or_error_t port =
        ::xenevtchn_bind_interdomain(bell->handles_[i], offerer, remote[i]);
    if (port < 0) {
      const int error = errno;
      throw XenError(
          detail::format("xenevtchn_bind_interdomain (domain {} port {}, {} doorbell): {}", offerer,
                         remote[i], reason_name(i), std::strerror(error)));
    }
    bell->ports_[i] = static_cast<std::uint32_t>(port);
  }
  return bell;
}

EventChannelDoorbell::~EventChannelDoorbell() {
  for (int i = 0; i < 2; ++i) {
    if (handles_[i] == nullptr) continue;
    if (ports_[i] != 0) ::xenevtchn_unbind(handles_[i], ports_[i]);
    ::xenevtchn_close(handles_[i]);
  }
}

void EventChannelDoorbell::ring(Wake reason) {
  const int i = index(reason);
  // A notify to a port whose peer is gone is dropped by Xen without an error; the waits
  // find the peer gone by the liveness byte, the platform or the core's heartbeat instead.
  if (::xenevtchn_notify(handles_[i], ports_[i]) != 0)
    last_errno_.store(errno, std::memory_order_relaxed); // relaxed: diagnostic only
}

void EventChannelDoorbell::declare_lost() {
  // release: publishes what the platform did before declaring the peer lost.
  lost_.store(true, std::memory_order_release);
}

WaitResult EventChannelDoorbell::wait(Wake reason, Nanos timeout) {
  const int i = index(reason);
  const int fd = ::xenevtchn_fd(handles_[i]);
  const Nanos start = posix::MonotonicClock::read();
  // acquire: pairs with declare_lost()'s release store.
  auto lost = [this] { return lost_.load(std::memory_order_acquire); };
  for (;;) {
    if (lost()) return WaitResult::failed;
    const Nanos waited = posix::MonotonicClock::read() - start;
    const Nanos left = timeout - waited;
    pollfd p{fd, POLLIN, 0};
    const Nanos slice = std::max<Nanos>(0, std::min(left, kLivenessSlice));
    const timespec ts{static_cast<time_t>(slice / 1'000'000'000),
                      static_cast<long>(slice % 1'000'000'000)};
    const int n = ::ppoll(&p, 1, &ts, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      last_errno_.store(errno, std::memory_order_relaxed); // relaxed: diagnostic only
      return WaitResult::failed;
    }
    if (n == 0) {
      if (slice >= left) return lost() ? WaitResult::failed : WaitResult::timed_out;
      continue;
    }
    if ((p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) return WaitResult::failed;
    const xenevtchn_port_or_error_t port = ::xenevtchn_pending(handles_[i]);
    if (port < 0) {
      if (errno == EAGAIN) continue;                       // another reader took it: poll again
      last_errno_.store(errno, std::memory_order_relaxed); // relaxed: diagnostic only
      return WaitResult::failed;
    }
    // Unmask at once: a notify that comes while masked stays pending and is queued again by
    // the unmask, so no ring is lost between here and the next wait.
    ::xenevtchn_unmask(handles_[i], static_cast<evtchn_port_t>(port));
    return lost() ? WaitResult::failed : WaitResult::rung;
  }
}

} // namespace ivmc::xen
