// The host-side ivshmem client: see include/ivmc/kvm/ivshmem_peer.hpp.
#include "ivmc/kvm/ivshmem_peer.hpp"

#include "ivmc/kvm/error.hpp"
#include "ivmc/kvm/ivshmem_protocol.hpp"
#include "ivmc/posix/clock.hpp"
#include "syscall_error.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <thread>
#include <utility>

#include <fmt/format.h>

namespace ivmc::kvm {

namespace {

using detail::syscall_message;

constexpr std::size_t kMaxFdsPerRead = 4; // one is legal; room to detect (and close) extras

std::int64_t from_little_endian(const std::array<unsigned char, 8>& bytes) {
  std::uint64_t bits = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) bits |= std::uint64_t{bytes[i]} << (8 * i);
  return static_cast<std::int64_t>(bits);
}

// Milliseconds for poll(), rounded up so we never wake before the deadline.
int poll_timeout_ms(Nanos deadline) {
  Nanos left = deadline - posix::MonotonicClock::read();
  if (left <= 0) return 0;
  Nanos ms = (left + 999'999) / 1'000'000;
  return static_cast<int>(std::min<Nanos>(ms, std::numeric_limits<int>::max()));
}

Nanos deadline_after(Nanos timeout) {
  Nanos now = posix::MonotonicClock::read();
  return timeout > std::numeric_limits<Nanos>::max() - now ? std::numeric_limits<Nanos>::max()
                                                           : now + std::max<Nanos>(timeout, 0);
}

double millis(Nanos ns) {
  return static_cast<double>(ns) / 1e6;
}

} // namespace

IvshmemPeer::Mapping::Mapping(Mapping&& other) noexcept
    : base(std::exchange(other.base, nullptr)), size(std::exchange(other.size, 0)) {}

IvshmemPeer::Mapping& IvshmemPeer::Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    if (base != nullptr) ::munmap(base, size);
    base = std::exchange(other.base, nullptr);
    size = std::exchange(other.size, 0);
  }
  return *this;
}

IvshmemPeer::Mapping::~Mapping() {
  if (base != nullptr) ::munmap(base, size);
}

IvshmemPeer::IvshmemPeer(std::string socket_path, unsigned vectors)
    : socket_path_(std::move(socket_path)), vectors_(vectors) {}

void IvshmemPeer::fail(const std::string& what) const {
  throw IvshmemError(fmt::format("ivshmem peer: server {}: {}", socket_path_, what));
}

IvshmemPeer IvshmemPeer::connect(const std::string& socket_path, Nanos timeout, unsigned vectors) {
  IvshmemPeer peer(socket_path, vectors);
  if (vectors < 1 || vectors > ivshmem::kMaxVectors)
    peer.fail(fmt::format("{} vectors requested: must be between 1 and {}", vectors,
                          ivshmem::kMaxVectors));
  if (socket_path.size() >= sizeof(sockaddr_un::sun_path))
    peer.fail(fmt::format("socket path is {} bytes; UNIX sockets allow at most {}",
                          socket_path.size(), sizeof(sockaddr_un::sun_path) - 1));
  const Nanos deadline = deadline_after(timeout);
  peer.open_socket(deadline);
  peer.handshake(deadline);
  // The server sends the handshake in one burst: whatever follows it at once (e.g. eventfds
  // beyond our vector count) is checked now, so a mismatch fails connect() rather than later.
  if (peer.process_server_messages() == ServerLink::failed) throw IvshmemError(peer.server_error_);
  return peer;
}

void IvshmemPeer::open_socket(Nanos deadline) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
  for (;;) {
    posix::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) fail(syscall_message("socket", "AF_UNIX", errno));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
      socket_ = std::move(fd);
      return;
    }
    const int err = errno;
    // Not there yet, a stale socket, or a full backlog: the server may be starting; retry.
    const bool transient = err == ENOENT || err == ECONNREFUSED || err == EAGAIN || err == EINTR;
    if (!transient) fail(syscall_message("connect", socket_path_, err));
    if (posix::MonotonicClock::read() >= deadline)
      fail(fmt::format("no server accepted a connection before the deadline; last attempt: {}",
                       syscall_message("connect", socket_path_, err)));
    const Nanos pause = std::min<Nanos>(10'000'000, deadline - posix::MonotonicClock::read());
    if (pause > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(pause));
  }
}

std::string IvshmemPeer::expectation() const {
  switch (stage_) {
  case Stage::version:
    return "the protocol version (message 1)";
  case Stage::own_id:
    return "this client's peer ID (message 2)";
  case Stage::shared_memory:
    return "the shared memory fd (message 3, value -1)";
  case Stage::vectors:
    return fmt::format("eventfds; own ID {} has {} of {} (does the server use --vectors {}?)", id_,
                       own_vectors_.size(), vectors_, vectors_);
  case Stage::done:
    return "nothing (the handshake is complete)";
  }
  return "?";
}

void IvshmemPeer::handshake(Nanos deadline) {
  const Nanos started = posix::MonotonicClock::read();
  while (stage_ != Stage::done) {
    std::optional<Message> message = read_message();
    if (message) {
      handle_handshake_message(std::move(*message));
      continue;
    }
    if (eof_)
      fail(fmt::format("closed the connection during the handshake after {} messages; expected {}",
                       messages_received_, expectation()));
    pollfd pfd{socket_.get(), POLLIN, 0};
    int ready = ::poll(&pfd, 1, poll_timeout_ms(deadline));
    if (ready < 0 && errno != EINTR) fail(syscall_message("poll", socket_path_, errno));
    if (ready == 0 && posix::MonotonicClock::read() >= deadline)
      fail(fmt::format("handshake timed out after {:.0f} ms having received {} messages; still "
                       "waiting for {}",
                       millis(posix::MonotonicClock::read() - started), messages_received_,
                       expectation()));
  }
}

std::optional<IvshmemPeer::Message> IvshmemPeer::read_message() {
  while (!eof_) {
    iovec iov{partial_.data() + partial_size_, partial_.size() - partial_size_};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerRead)];
    msghdr header{};
    header.msg_iov = &iov;
    header.msg_iovlen = 1;
    header.msg_control = control;
    header.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(socket_.get(), &header, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
      fail(syscall_message("recvmsg", socket_path_, errno));
    }
    const std::uint64_t index = messages_received_ + 1;

    // Take ownership of every fd first, so an error below never leaks one.
    std::vector<posix::UniqueFd> fds;
    for (cmsghdr* c = CMSG_FIRSTHDR(&header); c != nullptr; c = CMSG_NXTHDR(&header, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int fd = -1;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        fds.emplace_back(fd);
      }
    }
    if (header.msg_flags & MSG_CTRUNC)
      fail(fmt::format("message {}: file descriptors were dropped in transit (MSG_CTRUNC): more "
                       "than one fd in a message, or this process ran out of fds (RLIMIT_NOFILE)",
                       index));
    if (fds.size() + (partial_fd_ ? 1 : 0) > 1)
      fail(fmt::format("message {} came with {} file descriptors; the protocol allows at most one",
                       index, fds.size() + (partial_fd_ ? 1 : 0)));
    if (!fds.empty()) partial_fd_ = std::move(fds.front());

    if (n == 0) {
      eof_ = true;
      if (partial_size_ != 0)
        fail(fmt::format("closed the connection in the middle of message {} ({} of 8 bytes)", index,
                         partial_size_));
      return std::nullopt;
    }
    partial_size_ += static_cast<std::size_t>(n);
    if (partial_size_ < partial_.size()) continue;

    partial_size_ = 0;
    messages_received_ = index;
    return Message{from_little_endian(partial_), std::move(partial_fd_)};
  }
  return std::nullopt;
}

// Accepts only eventfds: ringing anything else (a pipe, a socket, a file) could block or
// corrupt something. Skipped when /proc is not mounted.
void IvshmemPeer::check_eventfd(int fd, std::int64_t peer, std::size_t vector) const {
  char target[64] = {};
  std::string link = fmt::format("/proc/self/fd/{}", fd);
  ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
  if (n < 0) return;
  std::string_view kind(target, static_cast<std::size_t>(n));
  if (kind != "anon_inode:[eventfd]")
    fail(fmt::format("message {}: the fd for peer {} vector {} is not an eventfd (it is {})",
                     messages_received_, peer, vector, kind));
}

void IvshmemPeer::handle_handshake_message(Message message) {
  const std::uint64_t index = messages_received_;
  const std::int64_t value = message.value;
  switch (stage_) {
  case Stage::version:
    if (value != ivshmem::kProtocolVersion)
      fail(fmt::format("message 1 (protocol version): the server speaks version {}, this client "
                       "only version {}",
                       value, ivshmem::kProtocolVersion));
    if (message.fd)
      fail("message 1 (protocol version) came with a file descriptor; it must have none");
    stage_ = Stage::own_id;
    return;

  case Stage::own_id:
    if (value < 0 || value > ivshmem::kMaxPeerId)
      fail(fmt::format("message 2 (peer ID): {} is not a peer ID (0..{})", value,
                       ivshmem::kMaxPeerId));
    if (message.fd) fail("message 2 (peer ID) came with a file descriptor; it must have none");
    id_ = static_cast<std::uint16_t>(value);
    stage_ = Stage::shared_memory;
    return;

  case Stage::shared_memory: {
    if (value != ivshmem::kSharedMemoryMessage)
      fail(fmt::format("message 3: expected -1 with the shared memory fd, got {}", value));
    if (!message.fd)
      fail("message 3 (shared memory, -1) came without a file descriptor: no shared memory");
    struct stat st {};
    if (::fstat(message.fd.get(), &st) != 0)
      fail(fmt::format("message 3 (shared memory): {}",
                       syscall_message("fstat", "the shared memory fd", errno)));
    if (!S_ISREG(st.st_mode))
      fail("message 3 (shared memory): the fd is not a shared memory object or file");
    if (st.st_size <= 0)
      fail(fmt::format("message 3 (shared memory): the object is {} bytes long", st.st_size));
    const auto size = static_cast<std::size_t>(st.st_size);
    void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, message.fd.get(), 0);
    if (base == MAP_FAILED)
      fail(fmt::format("message 3 (shared memory): {}",
                       syscall_message("mmap", fmt::format("{} bytes, MAP_SHARED", size), errno)));
    mapping_ = Mapping(base, size); // the mapping keeps the object alive; the fd can go
    stage_ = Stage::vectors;
    return;
  }

  case Stage::vectors: {
    if (value < 0 || value > ivshmem::kMaxPeerId)
      fail(fmt::format("message {}: expected a peer ID with an eventfd, got {}{}", index, value,
                       value == -1 ? " (a second shared memory message)" : ""));
    if (!message.fd)
      fail(fmt::format("message {}: peer ID {} without a file descriptor during the handshake "
                       "(a disconnect notice before the setup was complete)",
                       index, value));
    const auto peer = static_cast<std::uint16_t>(value);
    if (peer == id_) {
      // Own interrupt setup comes last: every other peer must be fully announced by now.
      for (const auto& [other, fds] : peers_) {
        if (fds.size() != vectors_)
          fail(fmt::format("message {}: peer {} was announced with {} eventfds, expected {} "
                           "(does the server use --vectors {}?)",
                           index, other, fds.size(), vectors_, vectors_));
      }
      check_eventfd(message.fd.get(), value, own_vectors_.size());
      own_vectors_.push_back(std::move(message.fd));
      if (own_vectors_.size() == vectors_) stage_ = Stage::done;
      return;
    }
    if (!own_vectors_.empty())
      fail(fmt::format("message {}: peer {} announced after this client's own interrupt setup "
                       "began; the spec sends other peers first, then the own ID {} times",
                       index, peer, vectors_));
    auto& fds = peers_[peer];
    if (fds.size() == vectors_)
      fail(fmt::format("message {}: peer {} announced with more than {} eventfds (does the server "
                       "use more vectors than this client?)",
                       index, peer, vectors_));
    check_eventfd(message.fd.get(), value, fds.size());
    fds.push_back(std::move(message.fd));
    if (fds.size() == vectors_) events_.push_back({PeerEvent::Kind::joined, peer});
    return;
  }

  case Stage::done:
    break;
  }
}

void IvshmemPeer::handle_notice(Message message) {
  const std::uint64_t index = messages_received_;
  const std::int64_t value = message.value;
  if (value < 0 || value > ivshmem::kMaxPeerId)
    fail(fmt::format("message {}: {} is not a peer ID (0..{}){}", index, value, ivshmem::kMaxPeerId,
                     value == -1 ? "; a second shared memory message" : ""));
  const auto peer = static_cast<std::uint16_t>(value);
  if (peer == id_)
    fail(fmt::format("message {}: a {} for this client's own ID {}", index,
                     message.fd ? fmt::format("connect notice (an eventfd beyond the {} vectors of "
                                              "this client: does the server use more?)",
                                              vectors_)
                                : std::string("disconnect notice"),
                     peer));
  if (message.fd) {
    auto& fds = peers_[peer];
    if (fds.size() == vectors_)
      fail(fmt::format("message {}: peer {} announced with more than {} eventfds", index, peer,
                       vectors_));
    check_eventfd(message.fd.get(), value, fds.size());
    fds.push_back(std::move(message.fd));
    if (fds.size() == vectors_) events_.push_back({PeerEvent::Kind::joined, peer});
    return;
  }
  auto it = peers_.find(peer);
  if (it == peers_.end())
    fail(fmt::format("message {}: disconnect notice for peer {}, which never connected", index,
                     peer));
  const bool was_complete = it->second.size() == vectors_;
  peers_.erase(it); // closes our copies of its eventfds
  if (was_complete) events_.push_back({PeerEvent::Kind::left, peer});
}

ServerLink IvshmemPeer::process_server_messages() {
  if (link_ != ServerLink::connected) return link_;
  try {
    while (std::optional<Message> message = read_message()) handle_notice(std::move(*message));
    if (eof_) {
      link_ = ServerLink::closed;
      server_error_ = fmt::format("ivshmem peer: server {} closed the connection", socket_path_);
      socket_.reset(); // an EOF socket stays readable: nobody should keep polling it
    }
  } catch (const IvshmemError& e) {
    link_ = ServerLink::failed;
    server_error_ = e.what();
    socket_.reset();
  }
  return link_;
}

void IvshmemPeer::disconnect() {
  socket_.reset();
  peers_.clear(); // our copies of the others' eventfds
  link_ = ServerLink::closed;
  server_error_ = fmt::format("ivshmem peer: left server {}", socket_path_);
}

std::vector<PeerEvent> IvshmemPeer::take_events() {
  return std::exchange(events_, {});
}

int IvshmemPeer::own_vector_fd(unsigned vector) const {
  return vector < own_vectors_.size() ? own_vectors_[vector].get() : -1;
}

bool IvshmemPeer::has_peer(std::uint16_t id) const {
  auto it = peers_.find(id);
  return it != peers_.end() && it->second.size() == vectors_;
}

std::vector<std::uint16_t> IvshmemPeer::peer_ids() const {
  std::vector<std::uint16_t> ids;
  for (const auto& [id, fds] : peers_)
    if (fds.size() == vectors_) ids.push_back(id);
  return ids;
}

int IvshmemPeer::peer_vector_fd(std::uint16_t id, unsigned vector) const {
  auto it = peers_.find(id);
  if (it == peers_.end() || it->second.size() != vectors_ || vector >= vectors_) return -1;
  return it->second[vector].get();
}

bool IvshmemPeer::wait_until(const std::function<bool()>& condition, Nanos timeout) {
  const Nanos deadline = deadline_after(timeout);
  for (;;) {
    process_server_messages();
    if (condition()) return true;
    if (link_ != ServerLink::connected) return false; // nothing more will arrive
    const int wait_ms = poll_timeout_ms(deadline);
    if (wait_ms == 0) return false;
    pollfd pfd{socket_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, wait_ms) < 0 && errno != EINTR) {
      link_ = ServerLink::failed;
      server_error_ = fmt::format("ivshmem peer: server {}: {}", socket_path_,
                                  syscall_message("poll", socket_path_, errno));
      socket_.reset();
      return false;
    }
  }
}

bool IvshmemPeer::wait_for_events(Nanos timeout) {
  return wait_until([this] { return !events_.empty(); }, timeout);
}

bool IvshmemPeer::wait_for_peer(std::uint16_t id, Nanos timeout) {
  return wait_until([this, id] { return has_peer(id); }, timeout);
}

bool IvshmemPeer::wait_for_peer_gone(std::uint16_t id, Nanos timeout) {
  return wait_until([this, id] { return !peers_.contains(id); }, timeout);
}

} // namespace ivmc::kvm
