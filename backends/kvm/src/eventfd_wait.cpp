// See eventfd_wait.hpp.
#include "eventfd_wait.hpp"

#include "ivmc/posix/clock.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <limits>

namespace ivmc::kvm::detail {

bool reset_eventfd(int fd, int& err) {
  std::uint64_t count = 0;
  // EAGAIN: the counter was 0 already (or another reader reset it first); nothing to forget.
  if (::read(fd, &count, sizeof count) < 0 && errno != EAGAIN && errno != EINTR) {
    err = errno;
    return false;
  }
  return true;
}

WaitResult wait_eventfd(int fd, Nanos timeout, int& err, bool reset) {
  // Only EINTR needs the deadline; it saturates for "practically forever" timeouts.
  const Nanos now = posix::MonotonicClock::read();
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
        err = errno;
        return WaitResult::failed;
      }
      left = deadline - posix::MonotonicClock::read();
      if (left > 0) continue;
      ready = 0;
    }
    if (ready == 0) return WaitResult::timed_out;
    if (pfd.revents & (POLLERR | POLLNVAL)) {
      err = EBADF;
      return WaitResult::failed;
    }
    // A reset that finds the counter 0 (another reader reset it first) is a spurious wake-up,
    // which the contract allows (the core re-checks). Either way, report the ring.
    if (reset && !reset_eventfd(fd, err)) return WaitResult::failed;
    return WaitResult::rung;
  }
}

} // namespace ivmc::kvm::detail
