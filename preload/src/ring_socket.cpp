// One TCP connection carried by a ring: see ring_socket.hpp.
#include "ring_socket.hpp"

#include "real.hpp"
#include "stats.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace ivmc::preload {

Nanos MonoClock::now() {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return Nanos{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
}

namespace {

long env_number(const char* name, long fallback, long low, long high) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  return (*end == '\0' && v >= low && v <= high) ? v : fallback;
}

ChannelConfig channel_config() {
  ChannelConfig c;
  c.ring_bytes = settings().ring_bytes;
  c.notify.policy = NotifyPolicy::spin_then_block;
  c.notify.spin_budget = settings().spin;
  // Liveness comes from the kernel connection (the doorbell): a peer that exits or is killed
  // closes it. A heartbeat would declare an idle application dead.
  c.liveness.heartbeat_period = kForever;
  c.liveness.peer_timeout = kForever / 4;
  c.liveness.wait_slice = 200'000'000;
  return c;
}

std::size_t channel_bytes() {
  return Channel::area_bytes(settings().ring_bytes, settings().ring_bytes);
}

template <class T>
std::atomic_ref<T> shared(T& field) {
  return std::atomic_ref<T>(field);
}

// Copies up to `n` bytes of `record` from `offset` into the iovecs starting at byte `done`.
std::size_t copy_to(const ReadableRecord& record, std::size_t offset, const iovec* iov, int count,
                    std::size_t done, std::size_t n) {
  std::size_t copied = 0;
  std::size_t skip = done;
  for (int i = 0; i < count && copied < n; ++i) {
    if (skip >= iov[i].iov_len) {
      skip -= iov[i].iov_len;
      continue;
    }
    auto* dst = static_cast<std::byte*>(iov[i].iov_base) + skip;
    std::size_t room = std::min(iov[i].iov_len - skip, n - copied);
    skip = 0;
    while (room > 0) {
      const std::size_t at = offset + copied;
      const auto& part = at < record.first.size() ? record.first : record.second;
      const std::size_t in = at < record.first.size() ? at : at - record.first.size();
      const std::size_t c = std::min(room, part.size() - in);
      std::memcpy(dst, part.data() + in, c);
      dst += c;
      room -= c;
      copied += c;
    }
  }
  return copied;
}

std::size_t total(const iovec* iov, int count) {
  std::size_t n = 0;
  for (int i = 0; i < count; ++i) n += iov[i].iov_len;
  return n;
}

} // namespace

const Settings& settings() {
  static const Settings s = [] {
    Settings v;
    const long ring = env_number("IVMC_RING_BYTES", v.ring_bytes, 1 << 12, 1 << 28);
    if ((ring & (ring - 1)) == 0) v.ring_bytes = static_cast<std::uint32_t>(ring);
    v.spin = env_number("IVMC_SPIN_US", 50, 0, 10'000'000) * 1000;
    v.attach_timeout = env_number("IVMC_ATTACH_TIMEOUT_MS", 3000, 1, 600'000) * 1'000'000;
    return v;
  }();
  return s;
}

std::size_t region_bytes() {
  return (channel_bytes() + 4095) / 4096 * 4096 + 4096;
}

RingSocket::RingSocket(int fd, std::unique_ptr<Region> region, int side)
    : bell_(fd), region_(std::move(region)), side_(side) {
  // The kernel connection carries one-byte rings: Nagle would hold a ring back until the
  // previous one is acknowledged, and the peer's delayed ACK makes that 40 ms.
  int before = 0;
  socklen_t len = sizeof before;
  nodelay_before_ = ::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &before, &len) == 0 && before != 0;
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bell_.on_lost([this] {
    if (channel_) channel_->mark_peer_dead("its kernel connection ended");
  });
}

RingSocket::SidePage& RingSocket::page(int side) {
  auto* base = region_->base() + region_->bytes() - 4096;
  return reinterpret_cast<SidePage*>(base)[side];
}

std::shared_ptr<RingSocket> RingSocket::client(int fd, std::unique_ptr<Region> region,
                                               std::uint16_t client_port, std::uint16_t server_port,
                                               std::string& why) {
  if (region->bytes() != region_bytes()) {
    why = "the region has the wrong size";
    return nullptr;
  }
  std::shared_ptr<RingSocket> s(new RingSocket(fd, std::move(region), 0));
  Opened opened =
      Channel::create({s->region_->base(), channel_bytes()}, channel_config(), s->bell_, s->clock_);
  if (!opened.channel) {
    why = opened.detail;
    return nullptr;
  }
  s->channel_ = std::move(opened.channel);
  // Relaxed: the region is not the peer's before the service hands it over, after this.
  shared(s->page(0).holders).store(1, std::memory_order_relaxed);
  shared(s->page(0).owner).store(::getpid(), std::memory_order_relaxed);
  s->client_port_ = client_port;
  s->server_port_ = server_port;
  s->state_ = State::pending;
  s->pending_since_ = s->clock_.now();
  s->pending_deadline_ = s->pending_since_ + settings().attach_timeout;
  return s;
}

std::shared_ptr<RingSocket> RingSocket::server(int fd, std::unique_ptr<Region> region,
                                               std::string& why) {
  if (region->bytes() != region_bytes()) {
    why = "the region has the wrong size";
    return nullptr;
  }
  std::shared_ptr<RingSocket> s(new RingSocket(fd, std::move(region), 1));
  // The magic first: from here on the client reads the ring (a ring byte must not precede it).
  ssize_t n;
  do {
    n = real::fn().send(fd, kMagic, sizeof kMagic, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof kMagic)) {
    why = std::string("cannot write the ring's magic: ") + std::strerror(errno);
    return nullptr;
  }
  Opened opened =
      Channel::attach({s->region_->base(), channel_bytes()}, channel_config(), s->bell_, s->clock_);
  if (!opened.channel) {
    why = "attach: " + opened.detail;
    real::fn().shutdown(fd, SHUT_RDWR); // the client reads the ring now: break the connection
    return nullptr;
  }
  s->channel_ = std::move(opened.channel);
  // Relaxed: only this process writes its side's page; the values are compared, never trusted.
  shared(s->page(1).holders).store(1, std::memory_order_relaxed);
  shared(s->page(1).owner).store(::getpid(), std::memory_order_relaxed);
  count(stats().ring_connections);
  return s;
}

RingSocket::~RingSocket() = default;

RingSocket::State RingSocket::state() const {
  std::lock_guard lock(state_mutex_);
  return state_;
}

void RingSocket::to_tcp() {
  state_ = State::tcp;
  bell_.silence();
  if (!nodelay_before_) {
    const int zero = 0;
    ::setsockopt(fd(), IPPROTO_TCP, TCP_NODELAY, &zero, sizeof zero);
  }
}

void RingSocket::fall_back(const std::string& why, bool warn_user) {
  to_tcp();
  count(stats().tcp_connections);
  if (warn_user) {
    count(stats().fallbacks);
    warn("connection from port " + std::to_string(client_port_) + " to port " +
         std::to_string(server_port_) + " stays on kernel TCP: " + why);
  }
}

void RingSocket::abandon() {
  std::lock_guard lock(state_mutex_);
  std::string why;
  service_cancel(client_port_, server_port_, why);
  to_tcp();
}

void RingSocket::forget() {
  std::lock_guard lock(state_mutex_);
  to_tcp();
}

RingSocket::State RingSocket::settle(bool block) {
  std::lock_guard lock(state_mutex_);
  while (state_ == State::pending) {
    char buffer[sizeof kMagic];
    const ssize_t n =
        real::fn().recv(fd(), buffer, sizeof buffer, MSG_PEEK | MSG_DONTWAIT | MSG_NOSIGNAL);
    const int error = errno;
    if (n == static_cast<ssize_t>(sizeof kMagic) &&
        std::memcmp(buffer, kMagic, sizeof kMagic) == 0) {
      real::fn().recv(fd(), buffer, sizeof buffer, MSG_DONTWAIT); // take it out
      state_ = State::ring;
      count(stats().ring_connections);
      break;
    }
    std::string why;
    if (n > 0 && std::memcmp(buffer, kMagic, static_cast<std::size_t>(n)) != 0) {
      // The listener speaks plain TCP: it is no ivmc process (a stale registration).
      if (service_cancel(client_port_, server_port_, why) == Answer::no) {
        warn("the listener on port " + std::to_string(server_port_) +
             " took the ring but writes on TCP; connection reset");
        real::fn().shutdown(fd(), SHUT_RDWR);
      }
      fall_back("the listener did not take the ring", true);
      break;
    }
    if (n == 0 || (n < 0 && error != EAGAIN && error != EWOULDBLOCK && error != EINTR)) {
      // The connection failed or ended before the listener took the ring: the application
      // sees that from the kernel.
      service_cancel(client_port_, server_port_, why);
      fall_back("", false);
      break;
    }
    const Nanos now = clock_.now();
    if (now >= pending_deadline_) {
      const Answer a = service_cancel(client_port_, server_port_, why);
      if (a == Answer::no) { // accepted meanwhile: the magic is on its way
        pending_deadline_ = now + settings().attach_timeout;
      } else {
        fall_back("the listener did not accept it within " +
                      std::to_string(settings().attach_timeout / 1'000'000) + " ms",
                  true);
        break;
      }
    }
    if (!block) break;
    pollfd p{fd(), POLLIN, 0};
    real::fn().poll(
        &p, 1,
        static_cast<int>(std::min<Nanos>(pending_deadline_ - now, 100'000'000) / 1'000'000) + 1);
  }
  return state_;
}

bool RingSocket::own() {
  if (owner_.load(std::memory_order_acquire)) return true; // pairs with the store below
  // After fork: take the side over once the process that had it let go without using it.
  const Nanos give_up = clock_.now() + 2'000'000'000;
  auto& p = page(side_);
  for (;;) {
    // Acquire: pairs with the releasing close's store; its released_ops is visible.
    std::int32_t expected = shared(p.owner).load(std::memory_order_acquire);
    if (expected == 0 && shared(p.released_ops).load(std::memory_order_relaxed) == ops_ &&
        shared(p.owner).compare_exchange_strong(expected, ::getpid(),
                                                std::memory_order_acq_rel)) { // one taker
      owner_.store(true, std::memory_order_release); // after the take-over above
      return true;
    }
    if (expected == 0 || clock_.now() >= give_up) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!warned_) {
    warned_ = true;
    warn("a ring connection shared after fork is in use by another process; this one gets "
         "ECONNRESET on it");
  }
  return false;
}

ssize_t RingSocket::read(const iovec* iov, int count_, int flags) {
  const std::size_t want = total(iov, count_);
  std::lock_guard lock(rx_mutex_);
  if (!own()) {
    errno = ECONNRESET;
    return -1;
  }
  ++ops_;
  if (want == 0) return 0;
  const bool nonblock = nonblocking_ || (flags & MSG_DONTWAIT) != 0;
  const bool waitall = (flags & MSG_WAITALL) != 0 && !nonblock;
  const bool peek = (flags & MSG_PEEK) != 0;
  std::size_t got = 0;
  while (got < want) {
    if (!viewing_) {
      const Nanos timeout = nonblock || (got > 0 && !waitall) ? 0 : kForever;
      const Errc e = channel_->peek(view_, timeout);
      if (e == Errc::ok) {
        viewing_ = true;
        view_offset_ = 0;
      } else if (e == Errc::would_block || e == Errc::timed_out) {
        if (got > 0) break;
        if (!bell_.drain()) continue; // the connection ended: the next peek says so
        if (channel_->request_wake(Wake::data) == Errc::ok) continue; // arrived meanwhile
        errno = EAGAIN;
        return -1;
      } else if (e == Errc::peer_closed || (e == Errc::peer_dead && ended_in_order())) {
        break; // end of stream after everything the peer sent
      } else {
        if (got > 0) break;
        errno = ECONNRESET;
        if (e != Errc::peer_dead && !warned_) {
          warned_ = true;
          warn("ring connection failed: " + channel_->error_detail());
        }
        return -1;
      }
    }
    const std::size_t n = copy_to(view_, view_offset_, iov, count_, got,
                                  std::min(want - got, view_.size() - view_offset_));
    got += n;
    if (peek) break; // a peek shows the current record only
    view_offset_ += n;
    if (view_offset_ == view_.size()) {
      channel_->release();
      viewing_ = false;
    }
  }
  if (!peek) count(stats().ring_bytes_received, got);
  return static_cast<ssize_t>(got);
}

ssize_t RingSocket::fail_write(int flags, int error) {
  if (error == EPIPE && (flags & MSG_NOSIGNAL) == 0) ::raise(SIGPIPE);
  errno = error;
  return -1;
}

ssize_t RingSocket::write(const iovec* iov, int count_, int flags) {
  std::lock_guard lock(tx_mutex_);
  if (!own()) return fail_write(flags, ECONNRESET);
  ++ops_;
  if (write_shut_) return fail_write(flags, EPIPE);
  if (channel_->peer_detached() || bell_.lost())
    return fail_write(flags, bell_.reset() ? ECONNRESET : EPIPE);
  const bool nonblock = nonblocking_ || (flags & MSG_DONTWAIT) != 0;
  const std::size_t chunk_max =
      std::min<std::size_t>(channel_->max_message(), settings().ring_bytes / 4);
  // Gather: a record per chunk, from up to two iovecs directly, more through a staging copy.
  thread_local std::vector<std::byte> staging;
  std::size_t sent = 0;
  int index = 0;
  std::size_t offset = 0; // in iov[index]
  const std::size_t want = total(iov, count_);
  std::size_t chunk = chunk_max;
  while (sent < want) {
    while (index < count_ && offset == iov[index].iov_len) {
      ++index;
      offset = 0;
    }
    std::span<const std::byte> head, body;
    const auto* first = static_cast<const std::byte*>(iov[index].iov_base) + offset;
    const std::size_t first_len = std::min(iov[index].iov_len - offset, chunk);
    if (first_len == chunk || index + 1 == count_) {
      head = {first, first_len};
    } else { // gather the next iovecs up to a chunk
      staging.clear();
      std::size_t at = offset;
      for (int i = index; i < count_ && staging.size() < chunk; ++i, at = 0) {
        const auto* b = static_cast<const std::byte*>(iov[i].iov_base) + at;
        const std::size_t c = std::min(iov[i].iov_len - at, chunk - staging.size());
        staging.insert(staging.end(), b, b + c);
      }
      head = {staging.data(), staging.size()};
    }
    const Errc e = channel_->send(head, body, nonblock ? 0 : kForever);
    if (e == Errc::ok) {
      std::size_t n = head.size();
      sent += n;
      while (n > 0) { // advance through the iovecs
        const std::size_t c = std::min(n, iov[index].iov_len - offset);
        offset += c;
        n -= c;
        if (offset == iov[index].iov_len && n > 0) {
          ++index;
          offset = 0;
        }
      }
      continue;
    }
    if (e == Errc::would_block || e == Errc::timed_out) {
      if (chunk > 4096) { // a smaller record may fit
        chunk /= 2;
        continue;
      }
      if (sent > 0) break;
      if (channel_->request_wake(Wake::space, chunk) == Errc::ok) continue;
      errno = EAGAIN;
      return -1;
    }
    if (sent > 0) break;
    if (e == Errc::closed || e == Errc::peer_closed || (e == Errc::peer_dead && ended_in_order()))
      return fail_write(flags, EPIPE);
    if (e != Errc::peer_dead && !warned_) {
      warned_ = true;
      warn("ring connection failed: " + channel_->error_detail());
    }
    return fail_write(flags, ECONNRESET);
  }
  count(stats().ring_bytes_sent, sent);
  return static_cast<ssize_t>(sent);
}

int RingSocket::shutdown(int how) {
  if (how == SHUT_WR || how == SHUT_RDWR) {
    std::lock_guard lock(tx_mutex_);
    if (own() && !write_shut_) {
      write_shut_ = true;
      channel_->shutdown_send(); // the peer reads everything sent, then end of stream
    }
  }
  return 0; // SHUT_RD: nothing on the ring to stop (the kernel connection stays whole)
}

int RingSocket::bytes_readable() {
  std::lock_guard lock(rx_mutex_);
  if (!own()) return 0;
  if (!viewing_ && channel_->peek(view_, 0) == Errc::ok) {
    viewing_ = true;
    view_offset_ = 0;
  }
  return viewing_ ? static_cast<int>(view_.size() - view_offset_) : 0;
}

short RingSocket::readiness(short events) {
  short r = 0;
  if (!own()) return POLLERR; // shared after fork and in use by the other process
  if (events & (POLLIN | POLLRDNORM)) {
    std::unique_lock lock(rx_mutex_, std::try_to_lock);
    if (!lock.owns_lock()) {
      // Another thread is reading: it will take what is there.
    } else if (viewing_) {
      r |= events & (POLLIN | POLLRDNORM);
    } else {
      const Errc e = channel_->peek(view_, 0);
      if (e == Errc::ok) {
        viewing_ = true;
        view_offset_ = 0;
        r |= events & (POLLIN | POLLRDNORM);
      } else if (e == Errc::peer_closed || e == Errc::peer_dead) {
        r |= (events & (POLLIN | POLLRDNORM | POLLRDHUP));
        if (bell_.lost()) r |= POLLHUP;
      } else if (e != Errc::would_block && e != Errc::timed_out) {
        r |= POLLERR | (events & (POLLIN | POLLRDNORM));
      }
    }
  }
  if (events & (POLLOUT | POLLWRNORM)) {
    std::unique_lock lock(tx_mutex_, std::try_to_lock);
    if (lock.owns_lock() && owner_.load(std::memory_order_acquire)) {
      if (write_shut_ || bell_.lost() || channel_->peer_detached()) {
        r |= events & (POLLOUT | POLLWRNORM); // the write reports why
      } else if (channel_->can_send(std::min<std::size_t>(4096, channel_->max_message()))) {
        r |= events & (POLLOUT | POLLWRNORM);
      }
    }
  }
  return r;
}

short RingSocket::arm(short events) {
  short r = 0;
  if (events & (POLLIN | POLLRDNORM)) {
    std::unique_lock lock(rx_mutex_, std::try_to_lock);
    if (lock.owns_lock() && owner_.load(std::memory_order_acquire) && !viewing_ &&
        channel_->request_wake(Wake::data) == Errc::ok)
      r |= events & (POLLIN | POLLRDNORM);
  }
  if (events & (POLLOUT | POLLWRNORM)) {
    std::unique_lock lock(tx_mutex_, std::try_to_lock);
    if (lock.owns_lock() && owner_.load(std::memory_order_acquire) &&
        channel_->request_wake(Wake::space, std::min<std::size_t>(4096, channel_->max_message())) ==
            Errc::ok)
      r |= events & (POLLOUT | POLLWRNORM);
  }
  return r;
}

void RingSocket::before_fork() {
  // Relaxed: a count of holders, read by the last close only; fork orders the rest.
  shared(page(side_).holders).fetch_add(1, std::memory_order_relaxed);
}

void RingSocket::in_child() {
  owner_.store(false, std::memory_order_relaxed); // the child's only thread, at fork
}

bool RingSocket::ended_in_order() {
  if (!bell_.reset()) return true; // the peer's kernel connection ended with a FIN
  // A reset: its last close found rings it had not read, or it died. If the process that used
  // the peer's side closed it and let it go (close_last, while a forked copy that never used it
  // still counted as a holder), the stream it wrote is whole. Relaxed: hostile, only compared.
  return shared(page(1 - side_).owner).load(std::memory_order_relaxed) == 0;
}

void RingSocket::before_exec() {
  if (owner_.load(std::memory_order_relaxed)) return; // relaxed: this process's own flag
  if (exec_released_) return; // once: a shell tries execve for each directory of PATH
  exec_released_ = true;
  // Relaxed: a count of holders, read by the last close only (close_last's acq_rel).
  shared(page(side_).holders).fetch_sub(1, std::memory_order_relaxed);
}

void RingSocket::close_last() {
  auto& p = page(side_);
  // acq_rel: the last holder sees every other holder's release before it detaches the side.
  const std::uint32_t left = shared(p.holders).fetch_sub(1, std::memory_order_acq_rel) - 1;
  if (left != 0 && left < 1024) { // another process holds this side (a bogus count: detach)
    if (owner_.load(std::memory_order_relaxed)) { // relaxed: this thread's own flag
      shared(p.released_ops).store(ops_, std::memory_order_relaxed); // published by the owner
      // Release: released_ops is visible to whoever takes the side over.
      shared(p.owner).store(0, std::memory_order_release);
    }
    // The side is the other process's now: never detach it. (Our mapping goes; theirs stays.)
    (void)channel_.release(); // the object leaks (its destructor would write the side's state)
    return;
  }
  if (state() == State::pending) abandon();
  channel_.reset(); // detaches: the peer reads what is left, then the end of the stream
}

} // namespace ivmc::preload
