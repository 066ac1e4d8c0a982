// The ivshmem server: see include/ivmc/kvm/ivshmem_server.hpp for what it promises.
//
// Design: one thread, one poll() loop. Every message for a client goes through that client's
// outbox and is sent with non-blocking sendmsg() when the socket takes it, so a client that stops
// reading can only fill its own outbox (bounded; it is dropped when full) and never stalls the
// server or the other clients.
#include "ivmc/kvm/ivshmem_server.hpp"

#include "ivmc/kvm/error.hpp"
#include "ivmc/kvm/ivshmem_protocol.hpp"
#include "ivmc/posix/clock.hpp"
#include "syscall_error.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <bit>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

namespace ivmc::kvm {

namespace {

using detail::syscall_message;
using detail::throw_syscall;

constexpr std::string_view kContext = "ivshmem-server";
constexpr int kListenBacklog = 16;
constexpr std::size_t kMinRegionSize = 4096; // one page: smaller cannot be mapped on its own
constexpr Nanos kAcceptBackoff = 100'000'000;

std::uint64_t to_little_endian(std::int64_t value) {
  auto bits = static_cast<std::uint64_t>(value);
  if constexpr (std::endian::native == std::endian::big) bits = __builtin_bswap64(bits);
  return bits;
}

std::string normalise_shm_name(const std::string& name) {
  std::string normalised = name;
  if (normalised.empty() || normalised.front() != '/') normalised.insert(0, 1, '/');
  return normalised;
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // validate_options() checked the length, so this always fits with its terminating NUL.
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

// Reads the pid a server wrote into its lock file ("" if none was recorded).
std::string read_recorded_pid(int lock_fd) {
  char buffer[32] = {};
  ssize_t n = ::pread(lock_fd, buffer, sizeof buffer - 1, 0);
  if (n <= 0) return {};
  std::string text(buffer, static_cast<std::size_t>(n));
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  for (char c : text)
    if (!std::isdigit(static_cast<unsigned char>(c))) return {}; // not ours: ignore it
  return text;
}

} // namespace

std::size_t parse_byte_size(std::string_view text) {
  auto fail = [&] {
    throw std::invalid_argument(
        fmt::format("invalid size '{}': expected a number of bytes with an optional K, M or G "
                    "suffix (powers of 1024), e.g. 4096, 64K, 4M, 1G",
                    text));
  };
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 19) fail();
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < digits; ++i)
    value = value * 10 + static_cast<unsigned>(text[i] - '0');

  std::string suffix;
  for (char c : text.substr(digits))
    suffix += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  unsigned shift = 0;
  if (suffix.empty() || suffix == "B") {
    shift = 0;
  } else {
    static constexpr std::string_view kUnits = "KMGT";
    auto unit = kUnits.find(suffix.front());
    std::string_view rest = std::string_view(suffix).substr(1);
    if (unit == std::string_view::npos || !(rest.empty() || rest == "B" || rest == "IB")) fail();
    shift = 10 * static_cast<unsigned>(unit + 1);
  }
  if (value > (std::numeric_limits<std::size_t>::max() >> shift)) fail();
  return static_cast<std::size_t>(value << shift);
}

IvshmemServer::IvshmemServer(IvshmemServerOptions options)
    : options_(std::move(options)), shm_name_(normalise_shm_name(options_.shm_name)),
      lock_path_(options_.socket_path + ".lock") {}

IvshmemServer::~IvshmemServer() {
  shutdown();
}

void IvshmemServer::log(std::string_view line) const {
  if (options_.log) {
    options_.log(line);
  } else {
    fmt::print(stderr, "{}: {}\n", kContext, line);
    std::fflush(stderr);
  }
}

void IvshmemServer::validate_options() const {
  auto invalid = [](std::string what) {
    throw IvshmemError(fmt::format("{}: {}", kContext, what));
  };
  const auto& o = options_;
  if (o.socket_path.empty()) invalid("the socket path is empty");
  if (o.socket_path.size() >= sizeof(sockaddr_un::sun_path))
    invalid(fmt::format("socket path '{}' is {} bytes; UNIX sockets allow at most {}",
                        o.socket_path, o.socket_path.size(), sizeof(sockaddr_un::sun_path) - 1));
  std::string_view bare = std::string_view(shm_name_).substr(1);
  if (bare.empty() || bare.find('/') != std::string_view::npos || bare.size() > NAME_MAX ||
      bare == "." || bare == "..")
    invalid(fmt::format("shm name '{}' is not a valid POSIX shm name (one path component, "
                        "e.g. 'ivshmem' for /dev/shm/ivshmem)",
                        o.shm_name));
  if (o.size < kMinRegionSize || !std::has_single_bit(o.size) ||
      o.size > static_cast<std::size_t>(std::numeric_limits<off_t>::max()))
    invalid(fmt::format("size {} bytes is not a power of two of at least {}: QEMU maps the region "
                        "as a PCI BAR, whose size must be a power of two",
                        o.size, kMinRegionSize));
  if (o.vectors < 1 || o.vectors > ivshmem::kMaxVectors)
    invalid(fmt::format("{} vectors: must be between 1 and {}", o.vectors, ivshmem::kMaxVectors));
  if (o.max_peers < 1 || o.max_peers > ivshmem::kMaxPeerId + 1)
    invalid(fmt::format("max peers {}: must be between 1 and {} (peer IDs are 16-bit)", o.max_peers,
                        ivshmem::kMaxPeerId + 1));
}

// Every peer costs the server one socket and `vectors` eventfds; make sure they all fit.
void IvshmemServer::ensure_fd_budget() const {
  const rlim_t needed = static_cast<rlim_t>(options_.max_peers) * (options_.vectors + 1) + 32;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0)
    throw_syscall(kContext, "getrlimit", "RLIMIT_NOFILE");
  if (limit.rlim_cur >= needed) return;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed)
    throw IvshmemError(
        fmt::format("{}: {} peers x ({} vectors + 1 socket) need {} file descriptors but the hard "
                    "RLIMIT_NOFILE is {}; lower --max-peers or --vectors",
                    kContext, options_.max_peers, options_.vectors, needed, limit.rlim_max));
  limit.rlim_cur = needed;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0)
    throw_syscall(kContext, "setrlimit", "RLIMIT_NOFILE");
}

void IvshmemServer::acquire_lock() {
  // A server that shuts down unlinks the lock file before closing it, so the file we lock may
  // be unlinked under us; then we retry on the new file.
  for (int attempt = 0; attempt < 10; ++attempt) {
    posix::UniqueFd fd(::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd) throw_syscall(kContext, "open", lock_path_);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) throw_syscall(kContext, "flock", lock_path_);
      // The holder writes its pid right after locking: give it a moment to appear.
      std::string holder = read_recorded_pid(fd.get());
      for (int i = 0; i < 20 && holder.empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        holder = read_recorded_pid(fd.get());
      }
      throw IvshmemError(fmt::format(
          "{}: socket {} is owned by a running ivshmem server (pid {}, holding {}); stop it "
          "first or choose another socket path",
          kContext, options_.socket_path, holder.empty() ? "unknown" : holder, lock_path_));
    }
    struct stat locked {};
    struct stat current {};
    if (::fstat(fd.get(), &locked) != 0) throw_syscall(kContext, "fstat", lock_path_);
    if (::stat(lock_path_.c_str(), &current) != 0 || current.st_ino != locked.st_ino ||
        current.st_dev != locked.st_dev)
      continue; // unlinked by a server that was shutting down: lock the new file

    std::string dead_pid = read_recorded_pid(fd.get());
    std::string pid = fmt::format("{}\n", ::getpid());
    if (::ftruncate(fd.get(), 0) != 0) throw_syscall(kContext, "ftruncate", lock_path_);
    if (::pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
      throw_syscall(kContext, "pwrite", lock_path_);
    lock_fd_ = std::move(fd);
    owner_pid_ = ::getpid();
    clean_stale_state_pid_ = dead_pid;
    return;
  }
  throw IvshmemError(fmt::format("{}: {} kept being replaced while locking it; is another server "
                                 "starting and stopping in a loop?",
                                 kContext, lock_path_));
}

// We hold the lock, so whatever socket or shm object exists under our names was left by a
// server that died without cleaning up (or by something else: we check before deleting).
void IvshmemServer::clean_stale_state() {
  std::vector<std::string> cleaned;

  struct stat socket_stat {};
  if (::lstat(options_.socket_path.c_str(), &socket_stat) == 0) {
    if (!S_ISSOCK(socket_stat.st_mode))
      throw IvshmemError(fmt::format("{}: {} exists and is not a socket; refusing to replace it",
                                     kContext, options_.socket_path));
    // A listener there that does not hold our lock is alive (another server implementation):
    // never steal its socket.
    posix::UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!probe) throw_syscall(kContext, "socket", "AF_UNIX");
    sockaddr_un address = unix_address(options_.socket_path);
    // Non-blocking: a live listener with a full backlog answers EAGAIN instead of stalling us.
    if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 ||
        errno == EAGAIN)
      throw IvshmemError(fmt::format("{}: socket {} is in use by a live process that does not "
                                     "hold {} (another ivshmem server?); refusing to replace it",
                                     kContext, options_.socket_path, lock_path_));
    if (::unlink(options_.socket_path.c_str()) != 0 && errno != ENOENT)
      throw_syscall(kContext, "unlink", options_.socket_path);
    cleaned.push_back(fmt::format("socket {}", options_.socket_path));
  } else if (errno != ENOENT) {
    throw_syscall(kContext, "lstat", options_.socket_path);
  }

  posix::UniqueFd stale_shm(::shm_open(shm_name_.c_str(), O_RDONLY | O_CLOEXEC, 0));
  if (stale_shm) {
    // A live server holds a lock on its object (see create_shared_memory()); one on another
    // socket may use the same shm name, and its object is not ours to remove.
    if (::flock(stale_shm.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) throw_syscall(kContext, "flock", shm_name_);
      throw IvshmemError(fmt::format("{}: shm {} is in use by a running ivshmem server (on "
                                     "another socket?); choose another shm name",
                                     kContext, shm_name_));
    }
    struct stat shm_stat {};
    if (::fstat(stale_shm.get(), &shm_stat) != 0) throw_syscall(kContext, "fstat", shm_name_);
    if (::shm_unlink(shm_name_.c_str()) != 0 && errno != ENOENT)
      throw_syscall(kContext, "shm_unlink", shm_name_);
    cleaned.push_back(fmt::format("shm {} ({} bytes)", shm_name_, shm_stat.st_size));
  } else if (errno != ENOENT) {
    throw_syscall(kContext, "shm_open", shm_name_);
  }

  if (cleaned.empty()) return;
  log(fmt::format("cleaned up after a dead server (pid {}): removed stale {}; the new region "
                  "is fresh and zero-filled, clients of the dead server keep the old one",
                  clean_stale_state_pid_.empty() ? "not recorded" : clean_stale_state_pid_,
                  fmt::join(cleaned, " and ")));
}

void IvshmemServer::create_shared_memory() {
  // O_EXCL: the region must be fresh (zero-filled by ftruncate), never one somebody else holds.
  posix::UniqueFd lock_fd(
      ::shm_open(shm_name_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!lock_fd) throw_syscall(kContext, "shm_open", shm_name_);
  owns_shm_ = true;
  // The object itself is locked for the server's life, so another server sharing the shm name
  // (on another socket) never mistakes it for stale. flock belongs to the open file description,
  // which SCM_RIGHTS shares: clients get a second description (below), or any client still
  // holding the fd would keep a dead server's object "locked" forever.
  if (::flock(lock_fd.get(), LOCK_EX | LOCK_NB) != 0) throw_syscall(kContext, "flock", shm_name_);
  if (::ftruncate(lock_fd.get(), static_cast<off_t>(options_.size)) != 0)
    throw_syscall(kContext, "ftruncate", fmt::format("{}, {} bytes", shm_name_, options_.size));
  posix::UniqueFd fd(::shm_open(shm_name_.c_str(), O_RDWR | O_CLOEXEC, 0));
  if (!fd) throw_syscall(kContext, "shm_open", shm_name_);
  shm_lock_fd_ = std::move(lock_fd);
  shm_fd_ = std::make_shared<const posix::UniqueFd>(std::move(fd));
}

void IvshmemServer::create_listening_socket() {
  posix::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) throw_syscall(kContext, "socket", "AF_UNIX");
  sockaddr_un address = unix_address(options_.socket_path);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    throw_syscall(kContext, "bind", options_.socket_path);
  owns_socket_ = true;
  if (::listen(fd.get(), kListenBacklog) != 0)
    throw_syscall(kContext, "listen", options_.socket_path);
  listen_fd_ = std::move(fd);
}

void IvshmemServer::start() {
  if (listen_fd_) throw IvshmemError(fmt::format("{}: start() called twice", kContext));
  validate_options();
  ensure_fd_budget();
  // Enough for a full handshake (3 + peers x vectors) plus a burst of joins and leaves; a
  // client this far behind is not reading its socket.
  max_outbox_ = 3 + 4 * std::size_t{options_.max_peers} * (options_.vectors + 1);
  try {
    acquire_lock();
    clean_stale_state();
    create_shared_memory();
    create_listening_socket();
    if (options_.channel_socket) {
      ChannelBrokerOptions b;
      b.socket_path = channel_socket_path();
      b.enrolments = options_.enrolments;
      b.trust = options_.trust;
      b.exec_enrolment = options_.exec_enrolment;
      broker_ = std::make_unique<ChannelBroker>(
          std::move(b),
          [this](std::uint16_t id) -> std::optional<pid_t> {
            auto it = clients_.find(id);
            if (it == clients_.end() || it->second.pid == 0) return std::nullopt;
            return it->second.pid;
          },
          [this](std::string_view line) { log(line); });
      broker_->start();
    }
  } catch (...) {
    shutdown();
    throw;
  }
}

void IvshmemServer::shutdown() {
  if (owner_pid_ != ::getpid()) return; // not started here (or a forked copy): nothing is ours
  broker_.reset();                      // closes its connections and removes its socket
  clients_.clear();                     // closing the sockets tells every client the server is gone
  if (owns_socket_ && ::unlink(options_.socket_path.c_str()) != 0 && errno != ENOENT)
    log(syscall_message("unlink", options_.socket_path, errno));
  listen_fd_.reset();
  owns_socket_ = false;
  if (owns_shm_ && ::shm_unlink(shm_name_.c_str()) != 0 && errno != ENOENT)
    log(syscall_message("shm_unlink", shm_name_, errno));
  shm_fd_.reset();
  shm_lock_fd_.reset();
  owns_shm_ = false;
  // Unlink before unlocking: a server starting now then sees a different inode and retries.
  if (lock_fd_ && ::unlink(lock_path_.c_str()) != 0 && errno != ENOENT)
    log(syscall_message("unlink", lock_path_, errno));
  lock_fd_.reset();
  owner_pid_ = 0;
}

std::string IvshmemServer::channel_socket_path() const {
  return options_.channel_socket ? options_.socket_path + ".ivmc" : std::string();
}

void IvshmemServer::run(int stop_fd) {
  serve(stop_fd, nullptr);
}

void IvshmemServer::run_until(const std::atomic<bool>& stop) {
  serve(-1, &stop);
}

void IvshmemServer::serve(int stop_fd, const std::atomic<bool>* stop) {
  if (!listen_fd_) throw IvshmemError(fmt::format("{}: run before start()", kContext));
  // relaxed: the flag only asks the loop to end; it publishes no data to this thread.
  while (stop == nullptr || !stop->load(std::memory_order_relaxed)) {
    if (poll_round(stop != nullptr ? 50 : -1, stop_fd)) return;
  }
}

void IvshmemServer::poll_once(int timeout_ms) {
  poll_round(timeout_ms, -1);
}

bool IvshmemServer::poll_round(int timeout_ms, int stop_fd) {
  std::vector<pollfd> fds;
  std::vector<std::uint16_t> ids; // fds[first_client + i] belongs to ids[i]
  fds.reserve(clients_.size() + 2);
  if (stop_fd >= 0) fds.push_back({stop_fd, POLLIN, 0});
  const Nanos now = posix::MonotonicClock::read();
  const bool accepting = now >= accept_paused_until_ns_;
  if (accepting) fds.push_back({listen_fd_.get(), POLLIN, 0});
  const std::size_t first_client = fds.size();
  for (const auto& [id, client] : clients_) {
    auto events = static_cast<short>(POLLIN | (client.outbox.empty() ? 0 : POLLOUT));
    fds.push_back({client.socket.get(), events, 0});
    ids.push_back(id);
  }
  const std::size_t first_broker = fds.size();
  const std::vector<int> broker_fds = broker_ ? broker_->poll_fds() : std::vector<int>{};
  for (int fd : broker_fds) fds.push_back({fd, POLLIN, 0});
  if (!accepting) {
    auto pause_ms = static_cast<int>((accept_paused_until_ns_ - now) / 1'000'000 + 1);
    timeout_ms = timeout_ms < 0 ? pause_ms : std::min(timeout_ms, pause_ms);
  }

  int ready = ::poll(fds.data(), fds.size(), timeout_ms);
  if (ready < 0) {
    if (errno == EINTR) return false;
    throw_syscall(kContext, "poll", fmt::format("{} fds", fds.size()));
  }
  if (ready == 0) return false;
  if (stop_fd >= 0 && fds[0].revents != 0) return true;

  for (std::size_t i = 0; i < ids.size(); ++i) {
    const short revents = fds[first_client + i].revents;
    if (revents == 0) continue;
    auto it = clients_.find(ids[i]);
    if (it == clients_.end()) continue;
    Client& client = it->second;
    check_input(client, revents);
    if (client.broken.empty() && (revents & POLLOUT)) flush(client);
  }
  // Main-socket clients first: a hello names a peer id the same round may have announced.
  if (accepting && (fds[first_client - 1].revents & POLLIN)) accept_clients();
  for (std::size_t i = 0; i < broker_fds.size(); ++i) {
    if (fds[first_broker + i].revents != 0)
      broker_->on_ready(broker_fds[i], fds[first_broker + i].revents);
  }
  flush_all();
  return false;
}

void IvshmemServer::check_input(Client& client, short revents) {
  if (!(revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) return;
  // Clients never send anything: data is a protocol violation, EOF a disconnect.
  char byte = 0;
  ssize_t n = ::recv(client.socket.get(), &byte, 1, MSG_DONTWAIT);
  if (n == 0 || (revents & (POLLHUP | POLLERR | POLLNVAL)))
    client.broken = "disconnected";
  else if (n > 0)
    client.broken = "sent data, but ivshmem clients must not write to the server";
  else if (errno != EAGAIN && errno != EINTR)
    client.broken = syscall_message("recv", fmt::format("peer {}", client.id), errno);
}

void IvshmemServer::drop_departed_clients() {
  std::vector<pollfd> fds;
  std::vector<std::uint16_t> ids;
  for (const auto& [id, client] : clients_) {
    fds.push_back({client.socket.get(), POLLIN, 0});
    ids.push_back(id);
  }
  if (::poll(fds.data(), fds.size(), 0) <= 0) return;
  for (std::size_t i = 0; i < fds.size(); ++i) {
    if (fds[i].revents != 0) check_input(clients_.at(ids[i]), fds[i].revents);
  }
  flush_all();
}

void IvshmemServer::accept_clients() {
  // Bounded so a flood of connections cannot starve the clients already connected.
  for (int i = 0; i < kListenBacklog; ++i) {
    posix::UniqueFd socket(
        ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (socket) {
      // Whoever left before this client connected must be neither announced to it nor counted
      // against max_peers: the round's poll() may predate their hang-up.
      drop_departed_clients();
      admit(std::move(socket));
      continue;
    }
    switch (errno) {
    case EAGAIN:
      return;
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
      continue;
    default:
      // Out of fds or memory: the pending connection stays queued; retry a little later
      // instead of spinning on a listening socket that stays readable.
      log(syscall_message("accept4", options_.socket_path, errno) + "; pausing accept for 100 ms");
      accept_paused_until_ns_ = posix::MonotonicClock::read() + kAcceptBackoff;
      return;
    }
  }
}

bool IvshmemServer::allocate_id(std::uint16_t& id) {
  if (options_.reuse_id_zero && !clients_.contains(0)) {
    id = 0;
    return true;
  }
  // Round-robin from the last ID given out, so a departed peer's ID is reused as late as
  // possible (a stale doorbell write to a recycled ID would interrupt a stranger).
  for (std::uint32_t tries = 0; tries <= ivshmem::kMaxPeerId; ++tries) {
    std::uint16_t candidate = next_id_++; // wraps from 65535 to 0
    if (!clients_.contains(candidate)) {
      id = candidate;
      return true;
    }
  }
  return false;
}

void IvshmemServer::admit(posix::UniqueFd socket) {
  if (clients_.size() >= options_.max_peers) {
    log(fmt::format("refusing a client: {} peers are connected, the maximum", clients_.size()));
    return; // closing the socket tells the client
  }
  Client client;
  if (!allocate_id(client.id)) {
    log("refusing a client: no free peer ID");
    return;
  }
  ucred cred{};
  socklen_t cred_len = sizeof cred;
  if (::getsockopt(socket.get(), SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0)
    client.pid = cred.pid; // who this peer id is, for the channel socket's hello
  client.socket = std::move(socket);
  for (unsigned v = 0; v < options_.vectors; ++v) {
    // Non-blocking: QEMU sets O_NONBLOCK on these anyway (it is shared by every copy of the
    // fd), and no reader or writer may ever block on a doorbell.
    posix::UniqueFd eventfd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!eventfd) {
      log(syscall_message("eventfd", fmt::format("peer {} vector {}", client.id, v), errno) +
          "; refusing the client");
      return;
    }
    client.vectors.push_back(std::make_shared<const posix::UniqueFd>(std::move(eventfd)));
  }

  // The order below is the one the spec prescribes; QEMU relies on the first three.
  enqueue(client, ivshmem::kProtocolVersion, nullptr);
  enqueue(client, client.id, nullptr);
  enqueue(client, ivshmem::kSharedMemoryMessage, shm_fd_);
  for (auto& [other_id, other] : clients_) {
    for (const auto& fd : client.vectors) enqueue(other, client.id, fd);
  }
  for (const auto& [other_id, other] : clients_) {
    for (const auto& fd : other.vectors) enqueue(client, other_id, fd);
  }
  for (const auto& fd : client.vectors) enqueue(client, client.id, fd);

  if (options_.verbose)
    log(fmt::format("peer {} connected ({} peers now)", client.id, clients_.size() + 1));
  const std::uint16_t id = client.id;
  clients_.emplace(id, std::move(client));
  if (options_.on_peer) options_.on_peer(id, true);
}

void IvshmemServer::enqueue(Client& client, std::int64_t value, SharedFd fd) {
  if (!client.broken.empty()) return;
  if (client.outbox.size() >= max_outbox_) {
    client.broken =
        fmt::format("not reading its socket ({} messages queued)", client.outbox.size());
    return;
  }
  client.outbox.push_back({value, std::move(fd)});
}

bool IvshmemServer::flush(Client& client) {
  while (!client.outbox.empty() && client.broken.empty()) {
    const OutgoingMessage& message = client.outbox.front();
    std::uint64_t wire = to_little_endian(message.value);
    iovec iov{&wire, sizeof wire};
    msghdr header{};
    header.msg_iov = &iov;
    header.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (message.fd) {
      header.msg_control = control;
      header.msg_controllen = sizeof control;
      cmsghdr* cmsg = CMSG_FIRSTHDR(&header);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int));
      const int fd = message.fd->get();
      std::memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
    }
    ssize_t sent = ::sendmsg(client.socket.get(), &header, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent == static_cast<ssize_t>(sizeof wire)) {
      client.outbox.pop_front();
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true; // wait for POLLOUT
    // A short send cannot happen for 8 bytes in one skb; if it ever does, the stream is out
    // of step and the client unusable. ETOOMANYREFS: too many fds in flight to a non-reader.
    client.broken = sent < 0 ? syscall_message("sendmsg", fmt::format("peer {}", client.id), errno)
                             : fmt::format("short send of {} bytes", sent);
  }
  return client.broken.empty();
}

void IvshmemServer::flush_all() {
  // Dropping a client queues notices for the others, whose sending may break them in turn:
  // repeat until no client is broken.
  for (;;) {
    std::vector<std::pair<std::uint16_t, std::string>> broken;
    for (auto& [id, client] : clients_) {
      if (client.broken.empty() && !client.outbox.empty()) flush(client);
      if (!client.broken.empty()) broken.emplace_back(id, client.broken);
    }
    if (broken.empty()) return;
    for (const auto& [id, why] : broken) drop(id, why);
  }
}

void IvshmemServer::drop(std::uint16_t id, std::string_view why) {
  auto node = clients_.extract(id);
  if (!node) return;
  // The disconnect notice is the peer ID without an fd. The peer's eventfds stay open while
  // queued join messages still refer to them.
  if (options_.announce_departures) {
    for (auto& [other_id, other] : clients_) enqueue(other, id, nullptr);
  }
  if (options_.verbose || why != "disconnected")
    log(fmt::format("peer {} {}; dropped ({} peers now)", id, why, clients_.size()));
  if (broker_) broker_->peer_left(id);
  if (options_.on_peer) options_.on_peer(id, false);
}

int ivshmem_server_main(const IvshmemServerOptions& options) {
  // SIGINT/SIGTERM arrive through a signalfd so the poll loop sees them without races.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigset_t previous_mask;
  if (::sigprocmask(SIG_BLOCK, &stop_signals, &previous_mask) != 0) {
    fmt::print(stderr, "{}: error: {}\n", kContext,
               syscall_message("sigprocmask", "SIGINT, SIGTERM", errno));
    return 1;
  }
  struct MaskRestorer {
    sigset_t mask;
    ~MaskRestorer() { ::sigprocmask(SIG_SETMASK, &mask, nullptr); }
  } restore_mask{previous_mask};
  ::signal(SIGPIPE, SIG_IGN); // sendmsg uses MSG_NOSIGNAL; this covers stray writes

  posix::UniqueFd stop_fd(::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!stop_fd) {
    fmt::print(stderr, "{}: error: {}\n", kContext,
               syscall_message("signalfd", "SIGINT, SIGTERM", errno));
    return 1;
  }
  try {
    IvshmemServer server(options);
    server.start();
    fmt::print("ivshmem-server: listening on {}, region {} {} bytes, {} vectors\n",
               options.socket_path, server.shm_name(), options.size, options.vectors);
    std::fflush(stdout);
    server.run(stop_fd.get());
    signalfd_siginfo info{};
    const char* signal_name = "a signal";
    if (::read(stop_fd.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info))
      signal_name = info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM";
    fmt::print(stderr, "{}: stopping on {}: removing {}, {} and {}.lock\n", kContext, signal_name,
               options.socket_path, server.shm_name(), options.socket_path);
    return 0;
  } catch (const IvshmemError& e) {
    fmt::print(stderr, "{}\n", e.what()); // already starts with "ivshmem-server: "
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: error: {}\n", kContext, e.what());
    return 1;
  }
}

} // namespace ivmc::kvm
