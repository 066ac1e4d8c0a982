// The interposed data calls: read, write, readv, writev, send, recv, sendto, recvfrom,
// sendmsg, recvmsg (and the C library's fortified __read_chk, __recv_chk, __recvfrom_chk). On
// a ring connection they read and write the ring; on any other fd they are the kernel's.
#include "fd_table.hpp"
#include "real.hpp"

#include <cerrno>
#include <cstdlib>

using namespace ivmc::preload;

#define IVMC_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

// The ring connection of `fd` for a data call, or nullptr (the kernel's). A pending client
// waits for the listener unless the call must not block; then `would_block` is set.
std::shared_ptr<RingSocket> for_data(int fd, int flags, bool& would_block) {
  would_block = false;
  if (!table().any()) return nullptr;
  std::shared_ptr<RingSocket> s = table().get(fd);
  if (!s) return nullptr;
  const bool block = !s->nonblocking() && (flags & MSG_DONTWAIT) == 0;
  bool pending = false;
  s = ring_of(fd, block, pending);
  if (s && pending) {
    would_block = true;
    errno = EAGAIN;
  }
  return s;
}

} // namespace

IVMC_EXPORT ssize_t read(int fd, void* buffer, size_t n) {
  bool wb = false;
  auto s = for_data(fd, 0, wb);
  if (!s) return real::fn().read(fd, buffer, n);
  if (wb) return -1;
  const iovec v{buffer, n};
  return s->read(&v, 1, 0);
}

IVMC_EXPORT ssize_t __read_chk(int fd, void* buffer, size_t n, size_t buffer_size) {
  if (n > buffer_size) std::abort(); // what the C library's check does
  return read(fd, buffer, n);
}

IVMC_EXPORT ssize_t write(int fd, const void* buffer, size_t n) {
  bool wb = false;
  auto s = for_data(fd, 0, wb);
  if (!s) return real::fn().write(fd, buffer, n);
  if (wb) return -1;
  const iovec v{const_cast<void*>(buffer), n};
  return s->write(&v, 1, 0);
}

IVMC_EXPORT ssize_t readv(int fd, const iovec* iov, int count) {
  bool wb = false;
  auto s = for_data(fd, 0, wb);
  if (!s) return real::fn().readv(fd, iov, count);
  if (wb) return -1;
  return s->read(iov, count, 0);
}

IVMC_EXPORT ssize_t writev(int fd, const iovec* iov, int count) {
  bool wb = false;
  auto s = for_data(fd, 0, wb);
  if (!s) return real::fn().writev(fd, iov, count);
  if (wb) return -1;
  return s->write(iov, count, 0);
}

IVMC_EXPORT ssize_t send(int fd, const void* buffer, size_t n, int flags) {
  bool wb = false;
  auto s = for_data(fd, flags, wb);
  if (!s) return real::fn().send(fd, buffer, n, flags);
  if (wb) return -1;
  const iovec v{const_cast<void*>(buffer), n};
  return s->write(&v, 1, flags);
}

IVMC_EXPORT ssize_t recv(int fd, void* buffer, size_t n, int flags) {
  bool wb = false;
  auto s = for_data(fd, flags, wb);
  if (!s) return real::fn().recv(fd, buffer, n, flags);
  if (wb) return -1;
  const iovec v{buffer, n};
  return s->read(&v, 1, flags);
}

IVMC_EXPORT ssize_t __recv_chk(int fd, void* buffer, size_t n, size_t buffer_size, int flags) {
  if (n > buffer_size) std::abort();
  return recv(fd, buffer, n, flags);
}

IVMC_EXPORT ssize_t sendto(int fd, const void* buffer, size_t n, int flags, const sockaddr* address,
                           socklen_t length) {
  bool wb = false;
  auto s = for_data(fd, flags, wb);
  if (!s) return real::fn().sendto(fd, buffer, n, flags, address, length);
  if (wb) return -1;
  const iovec v{const_cast<void*>(buffer), n}; // a connected TCP socket ignores the address
  return s->write(&v, 1, flags);
}

IVMC_EXPORT ssize_t recvfrom(int fd, void* buffer, size_t n, int flags, sockaddr* address,
                             socklen_t* length) {
  bool wb = false;
  auto s = for_data(fd, flags, wb);
  if (!s) return real::fn().recvfrom(fd, buffer, n, flags, address, length);
  if (wb) return -1;
  (void)address;
  if (length != nullptr) *length = 0; // as the kernel's TCP: a stream has no source address
  const iovec v{buffer, n};
  return s->read(&v, 1, flags);
}

IVMC_EXPORT ssize_t __recvfrom_chk(int fd, void* buffer, size_t n, size_t buffer_size, int flags,
                                   sockaddr* address, socklen_t* length) {
  if (n > buffer_size) std::abort();
  return recvfrom(fd, buffer, n, flags, address, length);
}

IVMC_EXPORT ssize_t sendmsg(int fd, const msghdr* message, int flags) {
  bool wb = false;
  auto s = for_data(fd, flags, wb);
  if (!s) return real::fn().sendmsg(fd, message, flags);
  if (wb) return -1;
  if (message->msg_controllen != 0) { // ancillary data (fds) cannot cross the ring
    errno = EOPNOTSUPP;
    return -1;
  }
  return s->write(message->msg_iov, static_cast<int>(message->msg_iovlen), flags);
}

IVMC_EXPORT ssize_t recvmsg(int fd, msghdr* message, int flags) {
  bool wb = false;
  auto s = for_data(fd, flags, wb);
  if (!s) return real::fn().recvmsg(fd, message, flags);
  if (wb) return -1;
  message->msg_namelen = 0; // as the kernel's TCP: a stream has no source address
  message->msg_controllen = 0;
  message->msg_flags = 0;
  return s->read(message->msg_iov, static_cast<int>(message->msg_iovlen), flags);
}
