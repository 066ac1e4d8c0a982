// This process's connection to the host service: see service.hpp.
#include "service.hpp"

#include "ivmc/kvm/channel_broker_protocol.hpp"
#include "real.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace ivmc::preload {

namespace broker = ivmc::kvm::broker;

Region::~Region() {
  if (base_ != nullptr) ::munmap(base_, bytes_);
}

namespace {

struct Connection {
  std::mutex mutex; // one request at a time
  int fd = -1;
  pid_t pid = 0; // the process that opened fd (a forked child opens its own)
  bool broken = false;
};

Connection& connection() {
  static Connection c;
  return c;
}

const char* host_socket() {
  return std::getenv("IVMC_HOST_SOCKET");
}

bool read_token(unsigned char (&token)[broker::kTokenBytes], std::string& why) {
  const char* text = std::getenv("IVMC_TOKEN_FD");
  char* end = nullptr;
  const long fd = text != nullptr ? std::strtol(text, &end, 10) : -1;
  if (text == nullptr || end == text || *end != '\0' || fd < 0) {
    why = "IVMC_TOKEN_FD is not an fd number";
    return false;
  }
  if (::pread(static_cast<int>(fd), token, sizeof token, 0) != static_cast<ssize_t>(sizeof token)) {
    why = "cannot read the enrolment token from fd " + std::to_string(fd) + ": " +
          std::strerror(errno) + " (closed by the program?)";
    return false;
  }
  return true;
}

// One request and its reply (with at most one fd). Caller holds the mutex.
bool exchange(Connection& c, const broker::Request& request, broker::Reply& reply, int& fd,
              std::string& why) {
  fd = -1;
  if (real::fn().send(c.fd, &request, sizeof request, MSG_NOSIGNAL) !=
      static_cast<ssize_t>(sizeof request)) {
    why = std::string("the host service's socket: send: ") + std::strerror(errno);
    return false;
  }
  pollfd p{c.fd, POLLIN, 0};
  int ready;
  do {
    ready = real::fn().poll(&p, 1, 5000);
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) {
    why = "the host service did not answer within 5 s";
    return false;
  }
  iovec iov{&reply, sizeof reply};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)] = {};
  msghdr header{};
  header.msg_iov = &iov;
  header.msg_iovlen = 1;
  header.msg_control = control;
  header.msg_controllen = sizeof control;
  const ssize_t n = real::fn().recvmsg(c.fd, &header, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  for (cmsghdr* m = CMSG_FIRSTHDR(&header); m != nullptr; m = CMSG_NXTHDR(&header, m)) {
    if (m->cmsg_level != SOL_SOCKET || m->cmsg_type != SCM_RIGHTS) continue;
    for (std::size_t i = 0; i < (m->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
      int f = -1;
      std::memcpy(&f, CMSG_DATA(m) + i * sizeof(int), sizeof f);
      if (fd < 0) {
        fd = f;
      } else {
        real::fn().close(f); // more than one: keep none of the extras
      }
    }
  }
  if (n != static_cast<ssize_t>(sizeof reply) || reply.magic != broker::kMagic ||
      reply.version != broker::kVersion || (header.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
    if (fd >= 0) real::fn().close(fd);
    fd = -1;
    why = n == 0 ? "the host service closed the connection" : "a malformed reply";
    return false;
  }
  reply.reason[sizeof reply.reason - 1] = '\0';
  return true;
}

// Connects and enrols this process (hello with the token) if it has not yet. Caller holds
// the mutex.
bool ensure_connected(Connection& c, std::string& why) {
  const pid_t self = ::getpid();
  if (c.fd >= 0 && c.pid == self && !c.broken) return true;
  if (c.fd >= 0 && c.pid != self) real::fn().close(c.fd); // the parent's; ours is separate
  c.fd = -1;
  c.broken = false;
  const char* path = host_socket();
  if (path == nullptr) {
    why = "IVMC_HOST_SOCKET is not set";
    return false;
  }
  broker::Request hello;
  hello.op = broker::Op::hello;
  hello.ivshmem_peer_id = broker::kNoPeer;
  if (!read_token(hello.token, why)) return false;
  const std::string channel_socket = std::string(path) + ".ivmc";
  sockaddr_un address{};
  if (channel_socket.size() >= sizeof address.sun_path) {
    why = "the host socket path is too long";
    return false;
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, channel_socket.c_str(), channel_socket.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0 ||
      real::fn().connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    why = "cannot reach the host service at " + channel_socket + ": " + std::strerror(errno);
    if (fd >= 0) real::fn().close(fd);
    return false;
  }
  c.fd = fd;
  c.pid = self;
  broker::Reply reply;
  int none = -1;
  if (!exchange(c, hello, reply, none, why) || reply.op != broker::Op::welcome) {
    if (why.empty()) why = std::string("the host service refused the enrolment: ") + reply.reason;
    c.broken = true;
    return false;
  }
  return true;
}

// `peer`, if given, gets the reply's vm field (connect: kNoListener for a tentative region).
Answer request(broker::Op op, std::uint64_t key, std::uint64_t bytes,
               std::unique_ptr<Region>* region, std::string& why, std::uint32_t* peer = nullptr) {
  Connection& c = connection();
  std::lock_guard lock(c.mutex);
  if (!ensure_connected(c, why)) return Answer::failed;
  broker::Request r;
  r.op = op;
  r.key = key;
  r.bytes = bytes;
  broker::Reply reply;
  int fd = -1;
  if (!exchange(c, r, reply, fd, why)) {
    c.broken = true;
    return Answer::failed;
  }
  if (reply.op == broker::Op::refused) {
    if (fd >= 0) real::fn().close(fd);
    why = reply.reason;
    return Answer::no;
  }
  if (peer != nullptr) *peer = reply.vm;
  if (region == nullptr) {
    if (fd >= 0) real::fn().close(fd);
    return reply.op == broker::Op::ok ? Answer::yes : Answer::failed;
  }
  if (reply.op != broker::Op::region || fd < 0) {
    if (fd >= 0) real::fn().close(fd);
    why = "the host service's reply carries no region";
    return Answer::failed;
  }
  // Hostile-input checks before mapping: a sealed memfd of the size the service named.
  const int seals = real::fn().fcntl(fd, F_GET_SEALS);
  struct stat st {};
  const bool sealed = seals >= 0 && (seals & broker::kRequiredSeals) == broker::kRequiredSeals;
  if (!sealed || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
      static_cast<std::uint64_t>(st.st_size) != reply.bytes ||
      (bytes != 0 && reply.bytes != bytes)) {
    real::fn().close(fd);
    why = sealed ? "the region's size is not the one named" : "the region is not sealed";
    return Answer::failed;
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  real::fn().close(fd); // the mapping keeps the memory
  if (base == MAP_FAILED) {
    why = std::string("mmap of the region: ") + std::strerror(errno);
    return Answer::failed;
  }
  *region = std::make_unique<Region>(base, size);
  return Answer::yes;
}

std::uint64_t ports_key(std::uint16_t client_port, std::uint16_t server_port) {
  return (std::uint64_t{client_port} << 16) | server_port;
}

} // namespace

bool enrolled() {
  static const bool yes = host_socket() != nullptr && std::getenv("IVMC_TOKEN_FD") != nullptr;
  return yes;
}

Answer service_listen(std::uint16_t port, std::string& why) {
  return request(broker::Op::listen, port, 0, nullptr, why);
}

Answer service_connect(std::uint16_t client_port, std::uint16_t server_port, std::size_t bytes,
                       std::unique_ptr<Region>& region, bool& tentative, std::string& why) {
  std::uint32_t listener = 0;
  const Answer a = request(broker::Op::connect, ports_key(client_port, server_port), bytes, &region,
                           why, &listener);
  tentative = a == Answer::yes && listener == broker::kNoListener;
  return a;
}

Answer service_confirm(std::uint16_t client_port, std::uint16_t server_port, std::string& why) {
  return request(broker::Op::confirm, ports_key(client_port, server_port), 0, nullptr, why);
}

Answer service_accept(std::uint16_t client_port, std::uint16_t server_port,
                      std::unique_ptr<Region>& region, std::string& why) {
  return request(broker::Op::accept, ports_key(client_port, server_port), 0, &region, why);
}

Answer service_cancel(std::uint16_t client_port, std::uint16_t server_port, std::string& why) {
  return request(broker::Op::cancel, ports_key(client_port, server_port), 0, nullptr, why);
}

} // namespace ivmc::preload
