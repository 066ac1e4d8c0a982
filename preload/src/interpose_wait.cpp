// The interposed waits: poll, ppoll, select, pselect, epoll_ctl, epoll_wait, epoll_pwait.
// A ring connection is ready when its ring says so (data, room, end of stream), not when the
// kernel socket is; the kernel socket only carries the peer's rings (socket_doorbell.hpp).
// So a wait looks at the rings first, spins for the spin budget (IVMC_SPIN_US) looking at the
// rings and the kernel's fds, then asks the peers to ring (Channel::request_wake) and sleeps
// in the kernel on the same fds: spin-then-block, the channel's default policy.
#include "fd_table.hpp"
#include "real.hpp"

#include <cerrno>
#include <climits>
#include <sched.h>
#include <vector>

using namespace ivmc::preload;

#define IVMC_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

MonoClock& clock() {
  static MonoClock c;
  return c;
}

constexpr ivmc::Nanos kNever = ivmc::kForever;
constexpr ivmc::Nanos kYieldAfter = 5'000; // spinning longer than this yields now and then

ivmc::Nanos deadline_of(ivmc::Nanos timeout) {
  return timeout < 0 ? kNever : clock().now() + timeout;
}

int ms_until(ivmc::Nanos deadline) {
  if (deadline == kNever) return -1;
  const ivmc::Nanos left = deadline - clock().now();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<ivmc::Nanos>((left + 999'999) / 1'000'000, INT_MAX));
}

// ---------------------------------------------------------------------------------------------
// poll and its relatives

struct Tracked {
  nfds_t index;
  std::shared_ptr<RingSocket> socket;
};

// Ring connections among `fds` (settled ones; a pending client waits as a kernel socket).
std::vector<Tracked> tracked_of(pollfd* fds, nfds_t n) {
  std::vector<Tracked> out;
  if (!table().any()) return out;
  for (nfds_t i = 0; i < n; ++i) {
    bool pending = false;
    if (auto s = ring_of(fds[i].fd, false, pending); s && !pending) out.push_back({i, s});
  }
  return out;
}

// The wait poll, select and epoll share: look at the rings (and the kernel) without blocking
// until something is ready or the spin ends; then arm every ring socket's doorbell (a look that
// finds one ready starts over) and block in the kernel until ready or the deadline.
// `look(round)` and `block(ms)` return what the call returns (0: nothing ready); `arm()` says
// whether a ring was ready while arming.
template <class Look, class Arm, class Block>
int spin_then_block(ivmc::Nanos timeout, Look look, Arm arm, Block block) {
  const ivmc::Nanos deadline = deadline_of(timeout);
  const ivmc::Nanos spin_start = timeout == 0 ? 0 : clock().now();
  const ivmc::Nanos spin_until = timeout == 0 ? 0 : spin_start + settings().spin;
  for (unsigned round = 0;; ++round) {
    const int r = look(round);
    if (r != 0 || timeout == 0) return r;
    const ivmc::Nanos now = clock().now();
    if (now < spin_until) {
      // After kYieldAfter of spinning, yield now and then: on a machine with more runnable
      // tasks than cores, the peer we wait for may need this core (sched_yield returns at once
      // when nothing else is runnable). Not sooner: a yield can hand the core to an unrelated
      // task for a whole time slice, which a ping-pong answered in a microsecond must not pay.
      if (now - spin_start >= kYieldAfter && (round & 3u) == 3u)
        ::sched_yield();
      else
        cpu_relax();
      continue;
    }
    if (deadline != kNever && now >= deadline) return 0;
    if (arm()) continue;
    if (const int s = block(ms_until(deadline)); s != 0) return s;
  }
}

// One look at everything: the rings, then the kernel (waiting up to `ms`). Fills revents.
int poll_round(pollfd* fds, nfds_t n, std::vector<pollfd>& kernel, const std::vector<Tracked>& t,
               int ms, const sigset_t* mask, bool with_kernel) {
  int ready = 0;
  for (const Tracked& x : t) fds[x.index].revents = x.socket->readiness(fds[x.index].events);
  if (with_kernel) {
    for (const Tracked& x : t) kernel[x.index].events = POLLIN; // the rings only
    int r;
    if (mask != nullptr) {
      timespec ts{}, *tsp = nullptr;
      if (ms >= 0) {
        ts = {ms / 1000, (ms % 1000) * 1'000'000L};
        tsp = &ts;
      }
      r = real::fn().ppoll(kernel.data(), n, tsp, mask);
    } else {
      r = real::fn().poll(kernel.data(), n, ms);
    }
    if (r < 0) return -1;
    std::size_t next = 0;
    for (nfds_t i = 0; i < n; ++i) {
      const bool ours = next < t.size() && t[next].index == i;
      if (!ours) {
        fds[i].revents = kernel[i].revents;
        continue;
      }
      const auto& s = t[next++].socket;
      if (kernel[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        s->drain();
        fds[i].revents = s->readiness(fds[i].events);
      }
    }
  }
  for (nfds_t i = 0; i < n; ++i)
    if (fds[i].revents != 0) ++ready;
  return ready;
}

int wait_poll(pollfd* fds, nfds_t n, ivmc::Nanos timeout, const sigset_t* mask,
              std::vector<Tracked>& t) {
  std::vector<pollfd> kernel(fds, fds + n);
  return spin_then_block(
      timeout,
      // While spinning, the kernel is asked every 16th round only (a syscall costs more than a
      // look at the rings).
      [&](unsigned round) {
        return poll_round(fds, n, kernel, t, 0, nullptr, round % 16 == 0 || t.size() < n);
      },
      [&] {
        bool ready = false;
        for (const Tracked& x : t)
          if (x.socket->arm(fds[x.index].events) != 0) ready = true;
        return ready;
      },
      [&](int ms) { return poll_round(fds, n, kernel, t, ms, mask, true); });
}

} // namespace

IVMC_EXPORT int poll(pollfd* fds, nfds_t n, int timeout_ms) {
  std::vector<Tracked> t = tracked_of(fds, n);
  if (t.empty()) return real::fn().poll(fds, n, timeout_ms);
  return wait_poll(fds, n, timeout_ms < 0 ? -1 : ivmc::Nanos{timeout_ms} * 1'000'000, nullptr, t);
}

IVMC_EXPORT int __poll_chk(pollfd* fds, nfds_t n, int timeout_ms, size_t) {
  return poll(fds, n, timeout_ms);
}

IVMC_EXPORT int ppoll(pollfd* fds, nfds_t n, const timespec* timeout, const sigset_t* mask) {
  std::vector<Tracked> t = tracked_of(fds, n);
  if (t.empty()) return real::fn().ppoll(fds, n, timeout, mask);
  const ivmc::Nanos ns =
      timeout == nullptr ? -1 : ivmc::Nanos{timeout->tv_sec} * 1'000'000'000 + timeout->tv_nsec;
  return wait_poll(fds, n, ns, mask, t);
}

namespace {

int select_common(int nfds, fd_set* r, fd_set* w, fd_set* e, ivmc::Nanos timeout,
                  const sigset_t* mask, bool& handled) {
  handled = false;
  if (!table().any() || nfds <= 0) return 0;
  std::vector<pollfd> fds;
  for (int fd = 0; fd < nfds && fd < FD_SETSIZE; ++fd) {
    short ev = 0;
    if (r != nullptr && FD_ISSET(fd, r)) ev |= POLLIN;
    if (w != nullptr && FD_ISSET(fd, w)) ev |= POLLOUT;
    if (e != nullptr && FD_ISSET(fd, e)) ev |= POLLPRI;
    if (ev != 0) fds.push_back({fd, ev, 0});
  }
  std::vector<Tracked> t = tracked_of(fds.data(), fds.size());
  if (t.empty()) return 0;
  handled = true;
  const int n = wait_poll(fds.data(), fds.size(), timeout, mask, t);
  if (n < 0) return -1;
  if (r != nullptr) FD_ZERO(r);
  if (w != nullptr) FD_ZERO(w);
  if (e != nullptr) FD_ZERO(e);
  int count = 0;
  for (const pollfd& p : fds) {
    if (p.revents & POLLNVAL) {
      errno = EBADF;
      return -1;
    }
    if (r != nullptr && (p.events & POLLIN) && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
      FD_SET(p.fd, r);
      ++count;
    }
    if (w != nullptr && (p.events & POLLOUT) && (p.revents & (POLLOUT | POLLERR))) {
      FD_SET(p.fd, w);
      ++count;
    }
    if (e != nullptr && (p.events & POLLPRI) && (p.revents & POLLPRI)) {
      FD_SET(p.fd, e);
      ++count;
    }
  }
  return count;
}

} // namespace

IVMC_EXPORT int select(int nfds, fd_set* r, fd_set* w, fd_set* e, timeval* timeout) {
  bool handled = false;
  const ivmc::Nanos ns =
      timeout == nullptr ? -1
                         : ivmc::Nanos{timeout->tv_sec} * 1'000'000'000 + timeout->tv_usec * 1000;
  const int n = select_common(nfds, r, w, e, ns, nullptr, handled);
  if (!handled) return real::fn().select(nfds, r, w, e, timeout);
  if (timeout != nullptr && n == 0) *timeout = timeval{0, 0}; // Linux reports the time left
  return n;
}

IVMC_EXPORT int pselect(int nfds, fd_set* r, fd_set* w, fd_set* e, const timespec* timeout,
                        const sigset_t* mask) {
  bool handled = false;
  const ivmc::Nanos ns =
      timeout == nullptr ? -1 : ivmc::Nanos{timeout->tv_sec} * 1'000'000'000 + timeout->tv_nsec;
  const int n = select_common(nfds, r, w, e, ns, mask, handled);
  if (!handled) return real::fn().pselect(nfds, r, w, e, timeout, mask);
  return n;
}

// ---------------------------------------------------------------------------------------------
// epoll

namespace {

constexpr std::uint32_t kRingKernelEvents = EPOLLIN | EPOLLRDHUP;

short poll_events_of(std::uint32_t e) {
  short p = 0;
  if (e & EPOLLIN) p |= POLLIN;
  if (e & EPOLLOUT) p |= POLLOUT;
  if (e & EPOLLRDHUP) p |= POLLRDHUP;
  return p;
}

std::uint32_t epoll_events_of(short p) {
  std::uint32_t e = 0;
  if (p & POLLIN) e |= EPOLLIN;
  if (p & POLLOUT) e |= EPOLLOUT;
  if (p & POLLRDHUP) e |= EPOLLRDHUP;
  if (p & POLLHUP) e |= EPOLLHUP;
  if (p & POLLERR) e |= EPOLLERR;
  return e;
}

struct EpollEntry {
  int fd;
  EpollRegistration reg;
  std::shared_ptr<RingSocket> socket; // settled, on the ring
};

// The ring connections of an epoll set, settling pending ones (and re-registering the ones
// that became rings or fell back).
std::vector<EpollEntry> ring_entries(int epfd) {
  std::vector<EpollEntry> out;
  for (auto& [fd, reg] : table().epoll_list(epfd)) {
    if (reg.removed) continue; // deleted by the application: its doorbell is drained unseen
    bool pending = false;
    auto s = ring_of(fd, false, pending);
    if (!s || pending) continue; // a fallback re-registered itself; pending: the kernel's
    if (reg.kernel_events != kRingKernelEvents) { // it became a ring: the kernel rings only
      epoll_event ev{};
      ev.events = kRingKernelEvents;
      ev.data.u64 = kEpollTag | static_cast<std::uint32_t>(fd);
      real::fn().epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
      reg.kernel_events = kRingKernelEvents;
      table().epoll_update(epfd, fd, reg);
    }
    out.push_back({fd, reg, s});
  }
  return out;
}

// One look: the rings, then the kernel (waiting up to `ms`). Returns events filled.
int epoll_round(int epfd, epoll_event* events, int max, std::vector<EpollEntry>& ring, int ms,
                const sigset_t* mask, bool with_kernel) {
  int n = 0;
  // Where each ring connection's event went in `events` (-1: none yet). Scratch kept per
  // thread: a wait runs once per request in an event loop, and allocating each time showed.
  thread_local std::vector<int> slot;
  thread_local std::vector<epoll_event> kernel;
  slot.assign(ring.size(), -1);
  auto report = [&](std::size_t i, std::uint32_t ev) {
    EpollEntry& x = ring[i];
    ev &= x.reg.events | EPOLLHUP | EPOLLERR;
    if (ev == 0 || x.reg.disabled) return;
    if (slot[i] >= 0) {
      events[slot[i]].events |= ev;
      return;
    }
    if (n >= max) return;
    slot[i] = n;
    events[n].events = ev;
    events[n].data = x.reg.data;
    ++n;
  };
  for (std::size_t i = 0; i < ring.size(); ++i)
    report(i, epoll_events_of(ring[i].socket->readiness(poll_events_of(ring[i].reg.events))));
  if (with_kernel && n < max) {
    kernel.resize(static_cast<std::size_t>(max - n));
    const int k = mask != nullptr ? real::fn().epoll_pwait(epfd, kernel.data(), max - n, ms, mask)
                                  : real::fn().epoll_wait(epfd, kernel.data(), max - n, ms);
    if (k < 0) return n > 0 ? n : -1;
    for (int j = 0; j < k; ++j) {
      const epoll_event e = kernel[static_cast<std::size_t>(j)];
      if ((e.data.u64 & kEpollTagMask) != kEpollTag) { // not ours: as the kernel says
        if (n < max) events[n++] = e;
        continue;
      }
      const int fd = static_cast<int>(e.data.u64 & 0xffffffffu);
      std::size_t i = 0;
      while (i < ring.size() && ring[i].fd != fd) ++i;
      if (i < ring.size()) {
        ring[i].socket->drain();
        report(i, epoll_events_of(ring[i].socket->readiness(poll_events_of(ring[i].reg.events))) |
                      (e.events & (EPOLLHUP | EPOLLERR)));
        continue;
      }
      EpollRegistration reg;
      if (!table().epoll_find(epfd, fd, reg)) continue; // closed meanwhile
      bool pending = false;
      auto s = ring_of(fd, false, pending);
      if (reg.removed) {
        // Deleted by the application: nothing to report. Take the ring's doorbell so that it
        // does not fire again; a doorbell that hung up would fire for ever, so it leaves the
        // kernel's set now (the application's DEL, done late).
        if (s && !pending) s->drain();
        if (e.events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
          table().epoll_erase(epfd, fd);
          real::fn().epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
        }
        continue;
      }
      if (s && !pending) continue; // became a ring just now: the next round reports it
      // Pending (or fell back just now): the kernel's readiness is the connection's.
      const std::uint32_t ev = e.events & (reg.events | EPOLLHUP | EPOLLERR);
      if (ev != 0 && n < max) {
        events[n].events = ev;
        events[n].data = reg.data;
        ++n;
      }
    }
  }
  // EPOLLONESHOT: a reported ring connection stays quiet until EPOLL_CTL_MOD.
  for (std::size_t i = 0; i < ring.size(); ++i) {
    if (slot[i] >= 0 && (ring[i].reg.events & EPOLLONESHOT)) {
      ring[i].reg.disabled = true;
      table().epoll_update(epfd, ring[i].fd, ring[i].reg);
    }
  }
  return n;
}

int wait_epoll(int epfd, epoll_event* events, int max, int timeout_ms, const sigset_t* mask) {
  if (!table().any() || max <= 0) return -2; // not ours
  std::vector<EpollEntry> ring = ring_entries(epfd);
  bool any_registered = !table().epoll_list(epfd).empty();
  if (!any_registered) return -2;
  const ivmc::Nanos timeout = timeout_ms < 0 ? -1 : ivmc::Nanos{timeout_ms} * 1'000'000;
  return spin_then_block(
      timeout, [&](unsigned) { return epoll_round(epfd, events, max, ring, 0, nullptr, true); },
      [&] {
        bool ready = false;
        for (EpollEntry& x : ring)
          if (!x.reg.disabled && x.socket->arm(poll_events_of(x.reg.events)) != 0) ready = true;
        return ready;
      },
      [&](int ms) {
        const int s = epoll_round(epfd, events, max, ring, ms, mask, true);
        if (s == 0) ring = ring_entries(epfd); // pending ones may have settled
        return s;
      });
}

} // namespace

IVMC_EXPORT int epoll_ctl(int epfd, int op, int fd, epoll_event* event) {
  if (!table().any() || !table().get(fd)) return real::fn().epoll_ctl(epfd, op, fd, event);
  // A settled ring connection's kernel registration only carries its doorbell, whatever the
  // application asks: it is made once and kept until close, and the application's interest
  // lives in the table alone. DEL, ADD and MOD then cost no system call (ae deletes and adds
  // for every request); the errors are the kernel's (EEXIST, ENOENT).
  EpollRegistration held;
  const bool kept = table().epoll_find(epfd, fd, held) && held.kernel_events == kRingKernelEvents;
  if (op == EPOLL_CTL_DEL) {
    if (kept) {
      if (held.removed) {
        errno = ENOENT;
        return -1;
      }
      held.removed = true;
      table().epoll_update(epfd, fd, held);
      return 0;
    }
    table().epoll_erase(epfd, fd);
    return real::fn().epoll_ctl(epfd, op, fd, event);
  }
  if (op != EPOLL_CTL_ADD && op != EPOLL_CTL_MOD) return real::fn().epoll_ctl(epfd, op, fd, event);
  if (event == nullptr) {
    errno = EFAULT;
    return -1;
  }
  bool pending = false;
  auto s = ring_of(fd, false, pending);
  if (!s) return real::fn().epoll_ctl(epfd, op, fd, event); // fell back: the kernel's
  EpollRegistration reg;
  reg.events = event->events;
  reg.data = event->data;
  if (kept && !pending) {
    if (op == EPOLL_CTL_ADD && !held.removed) {
      errno = EEXIST;
      return -1;
    }
    if (op == EPOLL_CTL_MOD && held.removed) {
      errno = ENOENT;
      return -1;
    }
    reg.kernel_events = kRingKernelEvents;
    table().epoll_set(epfd, fd, reg);
    return 0;
  }
  // A ring connection's kernel socket only rings; a pending one is the kernel's until settled.
  reg.kernel_events =
      pending ? (event->events & ~(EPOLLET | EPOLLONESHOT)) | EPOLLIN : kRingKernelEvents;
  epoll_event ev{};
  ev.events = reg.kernel_events;
  ev.data.u64 = kEpollTag | static_cast<std::uint32_t>(fd);
  const int r = real::fn().epoll_ctl(epfd, op, fd, &ev);
  if (r == 0) table().epoll_set(epfd, fd, reg);
  return r;
}

IVMC_EXPORT int epoll_wait(int epfd, epoll_event* events, int max, int timeout_ms) {
  const int r = wait_epoll(epfd, events, max, timeout_ms, nullptr);
  return r == -2 ? real::fn().epoll_wait(epfd, events, max, timeout_ms) : r;
}

IVMC_EXPORT int epoll_pwait(int epfd, epoll_event* events, int max, int timeout_ms,
                            const sigset_t* mask) {
  const int r = wait_epoll(epfd, events, max, timeout_ms, mask);
  return r == -2 ? real::fn().epoll_pwait(epfd, events, max, timeout_ms, mask) : r;
}
