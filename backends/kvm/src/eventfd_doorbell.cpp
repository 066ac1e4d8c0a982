// ivmc::Doorbell over ivshmem eventfds: see include/ivmc/kvm/eventfd_doorbell.hpp.
#include "ivmc/kvm/eventfd_doorbell.hpp"

#include "ivmc/kvm/error.hpp"
#include "ivmc/kvm/ivshmem_peer.hpp"
#include "ivmc/kvm/posix_clock.hpp"
#include "syscall_error.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <limits>

#include <fmt/format.h>

namespace ivmc::kvm {

namespace {

constexpr std::string_view kContext = "eventfd doorbell";

// A private, non-blocking, close-on-exec copy of `fd`. O_NONBLOCK lives in the open file
// description, shared with the server and QEMU (which sets it too): it makes ring() on a
// saturated counter and read() after a lost race return EAGAIN instead of blocking.
UniqueFd duplicate(int fd, std::string_view what) {
  if (fd < 0) throw IvshmemError(fmt::format("{}: {} is not available", kContext, what));
  UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!copy) detail::throw_syscall(kContext, "fcntl(F_DUPFD_CLOEXEC)", what);
  int flags = ::fcntl(copy.get(), F_GETFL);
  if (flags < 0 || ::fcntl(copy.get(), F_SETFL, flags | O_NONBLOCK) != 0)
    detail::throw_syscall(kContext, "fcntl(O_NONBLOCK)", what);
  return copy;
}

} // namespace

EventfdDoorbell::EventfdDoorbell(const IvshmemPeer& peer, std::uint16_t remote_id,
                                 WakeVectors ring_remote, WakeVectors wait_own) {
  if (ring_remote.data == ring_remote.space || wait_own.data == wait_own.space)
    throw IvshmemError(fmt::format("{}: data and space must use different vectors (ring {}/{}, "
                                   "wait {}/{})",
                                   kContext, ring_remote.data, ring_remote.space, wait_own.data,
                                   wait_own.space));
  if (!peer.has_peer(remote_id))
    throw IvshmemError(
        fmt::format("{}: peer {} is not connected to {}", kContext, remote_id, peer.socket_path()));
  auto remote = [&](unsigned v) {
    return duplicate(peer.peer_vector_fd(remote_id, v),
                     fmt::format("vector {} of peer {}", v, remote_id));
  };
  auto own = [&](unsigned v) {
    return duplicate(peer.own_vector_fd(v), fmt::format("own vector {} of peer {}", v, peer.id()));
  };
  ring_fds_[index(Wake::data)] = remote(ring_remote.data);
  ring_fds_[index(Wake::space)] = remote(ring_remote.space);
  wait_fds_[index(Wake::data)] = own(wait_own.data);
  wait_fds_[index(Wake::space)] = own(wait_own.space);
}

void EventfdDoorbell::ring(Wake reason) {
  const std::uint64_t one = 1;
  // EAGAIN means the counter is saturated: a ring is pending anyway, which is all we promise.
  if (::write(ring_fds_[index(reason)].get(), &one, sizeof one) < 0 && errno != EAGAIN)
    last_errno_.store(errno, std::memory_order_relaxed); // relaxed: diagnostic only
  rings_.fetch_add(1, std::memory_order_relaxed);        // relaxed: statistic only
}

WaitResult EventfdDoorbell::wait(Wake reason, Nanos timeout) {
  // acquire: pairs with declare_lost()'s release store.
  if (lost_.load(std::memory_order_acquire)) return WaitResult::failed;
  const int fd = wait_fds_[index(reason)].get();
  // Only EINTR needs the deadline; it saturates for "practically forever" timeouts.
  const Nanos now = MonotonicClock::read();
  const Nanos left_at_start = std::max<Nanos>(timeout, 0);
  const Nanos deadline = left_at_start > std::numeric_limits<Nanos>::max() - now
                             ? std::numeric_limits<Nanos>::max()
                             : now + left_at_start;
  Nanos left = left_at_start;
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    timespec ts{static_cast<time_t>(left / 1'000'000'000), static_cast<long>(left % 1'000'000'000)};
    int ready = ::ppoll(&pfd, 1, &ts, nullptr);
    if (ready < 0) {
      if (errno != EINTR) {
        last_errno_.store(errno, std::memory_order_relaxed); // relaxed: diagnostic only
        return WaitResult::failed;
      }
      left = deadline - MonotonicClock::read();
      if (left > 0) continue;
      ready = 0;
    }
    if (ready == 0) {
      // acquire: pairs with declare_lost()'s release store. Its wake-up may have gone to another
      // doorbell sharing this own vector, so a timeout re-checks.
      return lost_.load(std::memory_order_acquire) ? WaitResult::failed : WaitResult::timed_out;
    }
    if (pfd.revents & (POLLERR | POLLNVAL)) {
      last_errno_.store(EBADF, std::memory_order_relaxed); // relaxed: diagnostic only
      return WaitResult::failed;
    }
    std::uint64_t count = 0;
    ssize_t n = ::read(fd, &count, sizeof count);
    // EAGAIN: another reader reset the counter first; a spurious wake-up, which the contract
    // allows (the core re-checks). Either way, report the ring.
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      last_errno_.store(errno, std::memory_order_relaxed); // relaxed: diagnostic only
      return WaitResult::failed;
    }
    // acquire: pairs with declare_lost()'s release store.
    if (lost_.load(std::memory_order_acquire)) return WaitResult::failed;
    wakeups_.fetch_add(1, std::memory_order_relaxed); // relaxed: statistic only
    return WaitResult::rung;
  }
}

void EventfdDoorbell::declare_lost() {
  // release: publishes what the platform did before declaring the peer lost.
  lost_.store(true, std::memory_order_release);
  // Wake any waiter now rather than at its timeout; it sees `lost_` after the wake-up.
  const std::uint64_t one = 1;
  for (const UniqueFd& fd : wait_fds_) (void)!::write(fd.get(), &one, sizeof one);
}

} // namespace ivmc::kvm
