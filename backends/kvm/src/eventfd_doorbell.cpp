// ivmc::Doorbell over ivshmem eventfds: see include/ivmc/kvm/eventfd_doorbell.hpp.
#include "ivmc/kvm/eventfd_doorbell.hpp"

#include "eventfd_wait.hpp"
#include "ivmc/kvm/error.hpp"
#include "ivmc/kvm/ivshmem_peer.hpp"
#include "ivmc/posix/clock.hpp"
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
posix::UniqueFd duplicate(int fd, std::string_view what) {
  if (fd < 0) throw IvshmemError(fmt::format("{}: {} is not available", kContext, what));
  posix::UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
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
  uncleared_[index(reason)].store(false, std::memory_order_relaxed); // the wait resets itself
  return wait_on(reason, timeout, true);
}

WaitResult EventfdDoorbell::wait_uncleared(Wake reason, Nanos timeout) {
  const WaitResult r = wait_on(reason, timeout, false);
  if (r == WaitResult::rung) uncleared_[index(reason)].store(true, std::memory_order_relaxed);
  return r;
}

void EventfdDoorbell::clear(Wake reason) {
  if (!uncleared_[index(reason)].exchange(false, std::memory_order_relaxed)) return; // own note
  int err = 0;
  if (!detail::reset_eventfd(wait_fds_[index(reason)].get(), err))
    last_errno_.store(err, std::memory_order_relaxed); // relaxed: diagnostic only
}

WaitResult EventfdDoorbell::wait_on(Wake reason, Nanos timeout, bool reset) {
  // acquire: pairs with declare_lost()'s release store.
  if (lost_.load(std::memory_order_acquire)) return WaitResult::failed;
  int err = 0;
  const WaitResult r = detail::wait_eventfd(wait_fds_[index(reason)].get(), timeout, err, reset);
  if (r == WaitResult::failed) {
    last_errno_.store(err, std::memory_order_relaxed); // relaxed: diagnostic only
    return r;
  }
  // acquire: pairs with declare_lost()'s release store. A timeout re-checks too: the lost
  // notice's wake-up may have gone to another doorbell sharing this own vector.
  if (lost_.load(std::memory_order_acquire)) return WaitResult::failed;
  if (r == WaitResult::rung) wakeups_.fetch_add(1, std::memory_order_relaxed); // a statistic
  return r;
}

void EventfdDoorbell::declare_lost() {
  // release: publishes what the platform did before declaring the peer lost.
  lost_.store(true, std::memory_order_release);
  // Wake any waiter now rather than at its timeout; it sees `lost_` after the wake-up.
  const std::uint64_t one = 1;
  for (const posix::UniqueFd& fd : wait_fds_) (void)!::write(fd.get(), &one, sizeof one);
}

} // namespace ivmc::kvm
