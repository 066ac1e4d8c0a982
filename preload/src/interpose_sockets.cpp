// The interposed socket calls that set ring connections up and follow their fds: connect,
// listen, accept, accept4, close, shutdown, dup, dup2, dup3, fcntl and ioctl. Anything that is
// not a TCP connection between two co-resident `ivmc exec` processes goes to the kernel as is.
#include "fd_table.hpp"
#include "real.hpp"
#include "service.hpp"
#include "stats.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/ioctl.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

using namespace ivmc::preload;

namespace {

#define IVMC_EXPORT extern "C" __attribute__((visibility("default")))

struct Endpoint {
  sockaddr_storage address{};
  std::uint16_t port = 0;
};

bool endpoint_of(const sockaddr* a, socklen_t len, Endpoint& out) {
  if (a == nullptr) return false;
  if (a->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    std::memcpy(&out.address, a, sizeof(sockaddr_in));
    out.port = ntohs(reinterpret_cast<const sockaddr_in*>(a)->sin_port);
    return true;
  }
  if (a->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    std::memcpy(&out.address, a, sizeof(sockaddr_in6));
    out.port = ntohs(reinterpret_cast<const sockaddr_in6*>(a)->sin6_port);
    return true;
  }
  return false;
}

// The IPv4 address in a v4 or v4-mapped v6 address, in network order.
bool ipv4_of(const sockaddr_storage& a, in_addr& out) {
  if (a.ss_family == AF_INET) {
    out = reinterpret_cast<const sockaddr_in&>(a).sin_addr;
    return true;
  }
  const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a).sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    std::memcpy(&out, v6.s6_addr + 12, 4);
    return true;
  }
  return false;
}

// This host's own addresses (read once): a connection to one of them is co-resident too.
bool is_own_address(const sockaddr_storage& a) {
  static const std::vector<sockaddr_storage> own = [] {
    std::vector<sockaddr_storage> v;
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) return v;
    for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
      if (i->ifa_addr == nullptr) continue;
      sockaddr_storage s{};
      if (i->ifa_addr->sa_family == AF_INET) {
        std::memcpy(&s, i->ifa_addr, sizeof(sockaddr_in));
      } else if (i->ifa_addr->sa_family == AF_INET6) {
        std::memcpy(&s, i->ifa_addr, sizeof(sockaddr_in6));
      } else {
        continue;
      }
      v.push_back(s);
    }
    ::freeifaddrs(list);
    return v;
  }();
  in_addr v4{};
  const bool is_v4 = ipv4_of(a, v4);
  for (const sockaddr_storage& o : own) {
    in_addr ov4{};
    if (is_v4 && ipv4_of(o, ov4) && ov4.s_addr == v4.s_addr) return true;
    if (!is_v4 && a.ss_family == AF_INET6 && o.ss_family == AF_INET6 &&
        std::memcmp(&reinterpret_cast<const sockaddr_in6&>(a).sin6_addr,
                    &reinterpret_cast<const sockaddr_in6&>(o).sin6_addr, 16) == 0)
      return true;
  }
  return false;
}

bool is_local(const sockaddr_storage& a) {
  in_addr v4{};
  if (ipv4_of(a, v4)) {
    if ((ntohl(v4.s_addr) >> 24) == 127) return true;
  } else if (a.ss_family == AF_INET6 &&
             IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6&>(a).sin6_addr)) {
    return true;
  }
  return is_own_address(a);
}

bool is_tcp(int fd) {
  int type = 0;
  socklen_t len = sizeof type;
  return ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

bool local_endpoint(int fd, Endpoint& out) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  return ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0 &&
         endpoint_of(reinterpret_cast<sockaddr*>(&a), len, out);
}

// One warning per process when the host service cannot be reached at all.
void service_failed(const std::string& why) {
  static std::atomic<bool> warned{false};
  count(stats().fallbacks);
  // Relaxed: only makes the warning once; nothing else is ordered by it.
  if (!warned.exchange(true, std::memory_order_relaxed))
    warn("the host service failed (" + why + "); connections stay on kernel TCP");
}

bool nonblocking(int fd) {
  const int flags = real::fn().fcntl(fd, F_GETFL);
  return flags >= 0 && (flags & O_NONBLOCK) != 0;
}

// A ring connection for a socket about to connect to `target`, or nullptr (kernel TCP).
// `tentative`: nobody listened there yet; the connect must be confirmed (see connect()).
std::shared_ptr<RingSocket> prepare_client(int fd, const Endpoint& target, bool& tentative) {
  tentative = false;
  Endpoint self;
  if (!local_endpoint(fd, self)) return nullptr;
  if (self.port == 0) { // bind to an ephemeral port now, so the service can name the connection
    sockaddr_storage any{};
    any.ss_family = self.address.ss_family;
    const socklen_t len = any.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&any), len) != 0 || !local_endpoint(fd, self))
      return nullptr;
  }
  std::unique_ptr<Region> region;
  std::string why;
  switch (service_connect(self.port, target.port, region_bytes(), region, tentative, why)) {
  case Answer::no:
    count(stats().tcp_connections);
    return nullptr;
  case Answer::failed:
    service_failed(why);
    return nullptr;
  case Answer::yes:
    break;
  }
  auto s = RingSocket::client(fd, std::move(region), self.port, target.port, why);
  if (!s) {
    count(stats().fallbacks);
    warn("connection to port " + std::to_string(target.port) + " stays on kernel TCP: " + why);
    service_cancel(self.port, target.port, why);
    return nullptr;
  }
  s->set_nonblocking(nonblocking(fd));
  return s;
}

// Nobody listened on the port when the service was asked. A listener registers with the
// service before its kernel listen, so one that registered just after may be the one this
// kernel connect reaches: once the kernel connected (or is connecting), the service decides,
// together with that listener's accept, whether both ends take the ring or both stay on
// kernel TCP (a listener not under `ivmc exec`, or of another group: kernel TCP, as always).
int connect_tentative(int fd, const sockaddr* address, socklen_t length,
                      std::shared_ptr<RingSocket> s) {
  const int r = real::fn().connect(fd, address, length);
  const int error = errno;
  if (r != 0 && error != EINPROGRESS && error != EINTR) {
    s->abandon(); // cancels it at the service
    s.reset();
    errno = error;
    return r;
  }
  std::string why;
  switch (service_confirm(s->client_port(), s->server_port(), why)) {
  case Answer::yes:
    table().put(fd, std::move(s));
    break;
  case Answer::no:
    count(stats().tcp_connections);
    s->forget();
    s.reset();
    break;
  case Answer::failed: // undecided: the magic or its absence decides (RingSocket::settle)
    service_failed(why);
    table().put(fd, std::move(s));
    break;
  }
  errno = error;
  return r;
}

void adopt_accepted(int fd, int flags) {
  if (fd < 0 || !enrolled()) return;
  Endpoint self, peer;
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0 ||
      !endpoint_of(reinterpret_cast<sockaddr*>(&a), len, peer) || !is_local(peer.address) ||
      !local_endpoint(fd, self))
    return;
  std::unique_ptr<Region> region;
  std::string why;
  switch (service_accept(peer.port, self.port, region, why)) {
  case Answer::no:
    count(stats().tcp_connections);
    return;
  case Answer::failed:
    service_failed(why);
    return;
  case Answer::yes:
    break;
  }
  auto s = RingSocket::server(fd, std::move(region), why);
  if (!s) {
    count(stats().fallbacks);
    warn("accepted connection from port " + std::to_string(peer.port) +
         " could not take its ring (" + why + "); it is reset");
    return;
  }
  s->set_nonblocking((flags & SOCK_NONBLOCK) != 0 || nonblocking(fd));
  table().put(fd, std::move(s));
}

void forget_fd(int fd) {
  if (!table().any()) {
    return;
  }
  if (auto last = table().close(fd)) last->close_last();
}

} // namespace

IVMC_EXPORT int connect(int fd, const sockaddr* address, socklen_t length) {
  Endpoint target;
  if (!enrolled() || !endpoint_of(address, length, target) || !is_local(target.address) ||
      !is_tcp(fd) || table().get(fd))
    return real::fn().connect(fd, address, length);
  bool tentative = false;
  std::shared_ptr<RingSocket> s = prepare_client(fd, target, tentative);
  if (!s) return real::fn().connect(fd, address, length);
  if (tentative) return connect_tentative(fd, address, length, std::move(s));
  table().put(fd, s);
  const int r = real::fn().connect(fd, address, length);
  if (r != 0 && errno != EINPROGRESS && errno != EINTR) {
    const int error = errno;
    table().close(fd);
    s->abandon();
    s.reset();
    errno = error;
  }
  return r;
}

IVMC_EXPORT int listen(int fd, int backlog) {
  // A bound socket is registered before the kernel listens: a client that connects as soon as
  // the port accepts finds the registration there. (An unbound one gets its port from listen.)
  Endpoint self;
  const bool candidate = enrolled() && is_tcp(fd);
  bool registered = false;
  std::string why;
  if (candidate && local_endpoint(fd, self) && self.port != 0) {
    if (service_listen(self.port, why) == Answer::failed) service_failed(why);
    registered = true;
  }
  const int r = real::fn().listen(fd, backlog);
  if (r == 0 && candidate && !registered && local_endpoint(fd, self)) {
    if (service_listen(self.port, why) == Answer::failed) service_failed(why);
  }
  return r;
}

IVMC_EXPORT int accept(int fd, sockaddr* address, socklen_t* length) {
  const int c = real::fn().accept(fd, address, length);
  adopt_accepted(c, 0);
  return c;
}

IVMC_EXPORT int accept4(int fd, sockaddr* address, socklen_t* length, int flags) {
  const int c = real::fn().accept4(fd, address, length, flags);
  adopt_accepted(c, flags);
  return c;
}

IVMC_EXPORT int close(int fd) {
  if (table().any()) {
    table().epoll_close(fd); // if it was an epoll set
    forget_fd(fd);
  }
  return real::fn().close(fd);
}

IVMC_EXPORT int shutdown(int fd, int how) {
  bool pending = false;
  if (auto s = ring_of(fd, true, pending); s && !pending) return s->shutdown(how);
  return real::fn().shutdown(fd, how);
}

IVMC_EXPORT int dup(int fd) {
  const int r = real::fn().dup(fd);
  if (r >= 0 && table().any())
    if (auto s = table().get(fd)) table().put(r, s);
  return r;
}

IVMC_EXPORT int dup3(int fd, int target, int flags) {
  if (fd != target && table().any()) forget_fd(target); // dup3 closes what `target` was
  const int r =
      flags == 0 && fd == target ? real::fn().dup2(fd, target) : real::fn().dup3(fd, target, flags);
  if (r >= 0 && table().any() && fd != target)
    if (auto s = table().get(fd)) table().put(r, s);
  return r;
}

IVMC_EXPORT int dup2(int fd, int target) {
  return dup3(fd, target, 0);
}

namespace {

int fcntl_common(int fd, int command, void* argument) {
  if (command == F_SETFD && table().any() && table().get(fd)) {
    // The application's flag is kept; the kernel's stays set (fd_table.hpp: close-on-exec).
    const auto flags = static_cast<int>(reinterpret_cast<std::intptr_t>(argument));
    const int r = real::fn().fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    if (r == 0) table().set_app_cloexec(fd, (flags & FD_CLOEXEC) != 0);
    return r;
  }
  const int r = real::fn().fcntl(fd, command, argument);
  if (r < 0 || !table().any()) return r;
  if (command == F_GETFD) {
    if (table().get(fd)) return (r & ~FD_CLOEXEC) | (table().app_cloexec(fd) ? FD_CLOEXEC : 0);
    return r;
  }
  if (command == F_SETFL) {
    if (auto s = table().get(fd))
      s->set_nonblocking((reinterpret_cast<std::intptr_t>(argument) & O_NONBLOCK) != 0);
  } else if (command == F_DUPFD || command == F_DUPFD_CLOEXEC) {
    if (auto s = table().get(fd)) table().put(r, s);
  }
  return r;
}

} // namespace

IVMC_EXPORT int fcntl(int fd, int command, ...) {
  va_list ap;
  va_start(ap, command);
  void* argument = va_arg(ap, void*); // every fcntl argument fits a pointer's register
  va_end(ap);
  return fcntl_common(fd, command, argument);
}

IVMC_EXPORT int fcntl64(int fd, int command, ...) {
  va_list ap;
  va_start(ap, command);
  void* argument = va_arg(ap, void*);
  va_end(ap);
  return fcntl_common(fd, command, argument);
}

IVMC_EXPORT int ioctl(int fd, unsigned long request, ...) {
  va_list ap;
  va_start(ap, request);
  void* argument = va_arg(ap, void*);
  va_end(ap);
  if (table().any() && request == FIONREAD) {
    bool pending = false;
    if (auto s = ring_of(fd, false, pending); s && !pending) {
      *static_cast<int*>(argument) = s->bytes_readable();
      return 0;
    }
  }
  if ((request == FIOCLEX || request == FIONCLEX) && table().any() && table().get(fd)) {
    table().set_app_cloexec(fd, request == FIOCLEX); // the kernel's stays set (fd_table.hpp)
    return real::fn().ioctl(fd, FIOCLEX, nullptr);
  }
  const int r = real::fn().ioctl(fd, request, argument);
  if (r == 0 && request == FIONBIO && table().any())
    if (auto s = table().get(fd)) s->set_nonblocking(*static_cast<int*>(argument) != 0);
  return r;
}

// exec: ring connections do not cross it (fd_table.hpp: close-on-exec). One line says so when
// the application meant the new program to inherit one, instead of a silent EBADF there.
namespace {

void before_exec(const char* program) {
  if (!table().any()) return;
  for (const auto& s : table().all()) s->before_exec();
  for (const int fd : table().meant_to_inherit()) {
    std::fprintf(stderr,
                 "ivmc-preload: fd %d is a ring connection; it is not inherited by %s (exec "
                 "closes it: a ring connection cannot cross exec yet)\n",
                 fd, program != nullptr ? program : "the new program");
  }
}

} // namespace

IVMC_EXPORT int execve(const char* path, char* const argv[], char* const envp[]) {
  before_exec(path);
  return real::fn().execve(path, argv, envp);
}

IVMC_EXPORT int execv(const char* path, char* const argv[]) {
  before_exec(path);
  return real::fn().execv(path, argv);
}

IVMC_EXPORT int execvp(const char* file, char* const argv[]) {
  before_exec(file);
  return real::fn().execvp(file, argv);
}

IVMC_EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) {
  before_exec(file);
  return real::fn().execvpe(file, argv, envp);
}

IVMC_EXPORT int fexecve(int fd, char* const argv[], char* const envp[]) {
  before_exec(nullptr);
  return real::fn().fexecve(fd, argv, envp);
}

// For tests and tools: 0 when `fd` is the kernel's, 1 for a client still waiting for the
// listener to take the ring, 2 for a ring connection.
IVMC_EXPORT int ivmc_preload_connection_kind(int fd) {
  bool pending = false;
  const auto s = ring_of(fd, false, pending);
  return !s ? 0 : pending ? 1 : 2;
}
