// Link frames over TCP: see include/ivmc/posix/tcp_path.hpp.
#include "ivmc/posix/tcp_path.hpp"

#include "ivmc/posix/clock.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace ivmc::posix {
namespace {

constexpr Nanos kStalledFrame = 60'000'000'000; // TCG guests on a loaded machine stall for seconds

int poll_ms(Nanos timeout) {
  if (timeout <= 0) return 0;
  if (timeout >= Nanos{1'000'000'000} * 3600) return 3600 * 1000;
  return static_cast<int>((timeout + 999'999) / 1'000'000);
}

std::string sys_error(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

} // namespace

TcpPath::TcpPath(UniqueFd socket, std::size_t max_frame)
    : socket_(std::move(socket)), max_frame_(max_frame) {
  const int one = 1;
  ::setsockopt(socket_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const int flags = ::fcntl(socket_.get(), F_GETFL);
  ::fcntl(socket_.get(), F_SETFL, flags | O_NONBLOCK); // waits are poll()s with deadlines
}

TcpPath TcpPath::connect(const std::string& host, std::uint16_t port, Nanos timeout) {
  const Nanos deadline = MonotonicClock::read() + timeout;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    throw std::runtime_error("tcp path: '" + host + "' is not an IPv4 address");
  }
  for (;;) {
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) throw std::runtime_error(sys_error("tcp path: socket"));
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      return TcpPath(std::move(s));
    }
    if (MonotonicClock::read() > deadline) {
      throw std::runtime_error(
          sys_error(("tcp path: connect " + host + ":" + std::to_string(port)).c_str()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::optional<TcpPath> TcpPath::try_connect(const std::string& host, std::uint16_t port,
                                            Nanos timeout) {
  try {
    return connect(host, port, timeout);
  } catch (const std::runtime_error&) {
    return std::nullopt; // refused or unreachable until the deadline
  }
}

Errc TcpPath::fail(Errc code, std::string what) {
  if (error_.empty()) error_ = std::move(what);
  return code;
}

Errc TcpPath::send(std::span<const std::byte> head, std::span<const std::byte> body,
                   Nanos timeout) {
  if (!error_.empty()) return Errc::closed;
  const std::size_t total = head.size() + body.size();
  if (total > max_frame_) return Errc::message_too_large;
  const std::uint32_t length = static_cast<std::uint32_t>(total);
  iovec parts[3] = {{const_cast<std::uint32_t*>(&length), 4},
                    {const_cast<std::byte*>(head.data()), head.size()},
                    {const_cast<std::byte*>(body.data()), body.size()}};
  const Nanos deadline = MonotonicClock::read() + timeout;
  Nanos last_progress = MonotonicClock::read();
  std::size_t part = 0;
  while (part < 3) {
    msghdr msg{};
    msg.msg_iov = parts + part;
    msg.msg_iovlen = 3 - part;
    // MSG_NOSIGNAL: a peer that went away is an error return here, not a SIGPIPE.
    const ssize_t w = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      // Once a frame has started it must be finished, or the stream would be corrupt.
      pollfd p{socket_.get(), POLLOUT, 0};
      const Nanos left = deadline - MonotonicClock::read();
      const bool started = part > 0 || parts[0].iov_len < 4;
      if (::poll(&p, 1, started ? 1000 : poll_ms(left)) == 0) {
        if (!started && left <= 0) return Errc::timed_out;
        // A frame cut short would corrupt the stream, so a started one may overrun the
        // timeout, but not forever: a peer that reads nothing for this long is gone.
        if (started && MonotonicClock::read() - last_progress > kStalledFrame) {
          return fail(Errc::closed, "tcp path: the peer read nothing for " +
                                        std::to_string(kStalledFrame / 1'000'000'000) +
                                        " s in the middle of a frame");
        }
      }
      continue;
    }
    if (w < 0) return fail(Errc::closed, sys_error("tcp path: sendmsg"));
    last_progress = MonotonicClock::read();
    auto done = static_cast<std::size_t>(w);
    while (part < 3 && done >= parts[part].iov_len) done -= parts[part++].iov_len;
    if (part < 3) {
      parts[part].iov_base = static_cast<char*>(parts[part].iov_base) + done;
      parts[part].iov_len -= done;
    }
  }
  return Errc::ok;
}

Errc TcpPath::fill(Nanos timeout) {
  if (eof_) return Errc::peer_closed;
  pollfd p{socket_.get(), POLLIN, 0};
  const int r = ::poll(&p, 1, poll_ms(timeout));
  if (r == 0) return Errc::timed_out;
  if (r < 0 && errno != EINTR) return fail(Errc::closed, sys_error("tcp path: poll"));
  // Drop the frames already handed out before reading more, keeping only the unread tail (part
  // of one frame): the buffer then holds at most the largest frame plus one read, however long
  // the stream. Clearing it only when it was read to the end let it grow by every byte received
  // whenever reads ended inside a frame (64 KiB reads of 4 KiB frames nearly always do): a
  // domU's receiver was killed for lack of memory after 45 MB.
  if (staged_start_ > 0) {
    staged_.erase(staged_.begin(), staged_.begin() + static_cast<std::ptrdiff_t>(staged_start_));
    staged_start_ = 0;
  }
  const std::size_t old = staged_.size();
  staged_.resize(old + 65536);
  const ssize_t n = ::read(socket_.get(), staged_.data() + old, 65536);
  staged_.resize(old + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
  if (n == 0) {
    eof_ = true;
    return Errc::peer_closed;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return Errc::timed_out;
  if (n < 0) return fail(Errc::closed, sys_error("tcp path: read"));
  return Errc::ok;
}

Errc TcpPath::recv(std::span<std::byte> head, std::span<std::byte> body, std::size_t& length,
                   Nanos timeout) {
  if (!error_.empty()) return Errc::closed;
  const Nanos deadline = MonotonicClock::read() + std::max<Nanos>(timeout, 0);
  for (;;) {
    const std::size_t have = staged_.size() - staged_start_;
    if (have >= 4) {
      std::uint32_t n = 0;
      std::memcpy(&n, staged_.data() + staged_start_, 4); // copy-then-check
      if (n > max_frame_) {
        return fail(Errc::protocol_violation, "tcp path: frame length " + std::to_string(n) +
                                                  " exceeds " + std::to_string(max_frame_));
      }
      if (have >= 4 + std::size_t{n}) {
        length = n;
        if (n > head.size() + body.size()) return Errc::buffer_too_small;
        const std::byte* src = staged_.data() + staged_start_ + 4;
        const std::size_t h = std::min<std::size_t>(n, head.size());
        if (h != 0) std::memcpy(head.data(), src, h);
        if (n > h) std::memcpy(body.data(), src + h, n - h);
        staged_start_ += 4 + n;
        return Errc::ok;
      }
    }
    const Nanos left = deadline - MonotonicClock::read();
    const Errc e = fill(left);
    if (e == Errc::ok) continue;
    if (e == Errc::timed_out && left > 0) continue;
    if (e == Errc::peer_closed && staged_.size() - staged_start_ != 0) {
      return fail(Errc::protocol_violation, "tcp path: connection closed inside a frame");
    }
    return e;
  }
}

TcpListener::TcpListener() : TcpListener("127.0.0.1", 0) {}

TcpListener::TcpListener(const std::string& address, std::uint16_t port)
    : socket_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
  if (!socket_) throw std::runtime_error(sys_error("tcp listener: socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) {
    throw std::runtime_error("tcp listener: '" + address + "' is not an IPv4 address");
  }
  const int one = 1;
  ::setsockopt(socket_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); // a fixed port
  socklen_t len = sizeof addr;
  if (::bind(socket_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(socket_.get(), 4) != 0 ||
      ::getsockname(socket_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error(sys_error(
        ("tcp listener: bind/listen on " + address + ":" + std::to_string(port)).c_str()));
  }
  port_ = ntohs(addr.sin_port);
}

std::optional<TcpPath> TcpListener::try_accept(Nanos timeout) {
  pollfd p{socket_.get(), POLLIN, 0};
  if (::poll(&p, 1, poll_ms(timeout)) <= 0) return std::nullopt;
  UniqueFd s(::accept4(socket_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!s) return std::nullopt; // the connection went away again
  return TcpPath(std::move(s));
}

TcpPath TcpListener::accept(Nanos timeout) {
  pollfd p{socket_.get(), POLLIN, 0};
  if (::poll(&p, 1, poll_ms(timeout)) <= 0) {
    throw std::runtime_error("tcp listener: no connection on port " + std::to_string(port_));
  }
  UniqueFd s(::accept4(socket_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!s) throw std::runtime_error(sys_error("tcp listener: accept"));
  return TcpPath(std::move(s));
}

} // namespace ivmc::posix
