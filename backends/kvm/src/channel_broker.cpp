// The ivmc channel socket's server side: see include/ivmc/kvm/channel_broker.hpp.
#include "ivmc/kvm/channel_broker.hpp"

#include "ivmc/kvm/error.hpp"
#include "syscall_error.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace ivmc::kvm {
namespace {

using detail::syscall_message;
using detail::throw_syscall;

constexpr std::string_view kContext = "ivshmem-server channel socket";

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

// Compares in time independent of where the first difference is: a token is a secret.
bool same_token(const EnrolmentToken& a, const unsigned char* b) {
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

} // namespace

EnrolmentToken random_token() {
  EnrolmentToken token{};
  std::size_t got = 0;
  while (got < token.size()) {
    const ssize_t n = ::getrandom(token.data() + got, token.size() - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw_syscall("enrolment", "getrandom", "a token");
    got += static_cast<std::size_t>(n);
  }
  return token;
}

std::string token_hex(const EnrolmentToken& token) {
  std::string text;
  for (unsigned char c : token) text += fmt::format("{:02x}", c);
  return text;
}

bool parse_token_hex(std::string_view text, EnrolmentToken& out) {
  if (text.size() != 2 * out.size()) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

ChannelBroker::ChannelBroker(ChannelBrokerOptions options,
                             std::function<std::optional<pid_t>(std::uint16_t)> pid_of_peer,
                             std::function<void(std::string_view)> log)
    : options_(std::move(options)), pid_of_peer_(std::move(pid_of_peer)), log_(std::move(log)) {}

ChannelBroker::~ChannelBroker() {
  clients_.clear();
  if (owns_socket_) ::unlink(options_.socket_path.c_str());
}

void ChannelBroker::start() {
  if (options_.socket_path.size() >= sizeof(sockaddr_un::sun_path))
    throw IvshmemError(
        fmt::format("{}: path '{}' is too long for a UNIX socket", kContext, options_.socket_path));
  struct stat st {};
  if (::lstat(options_.socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw IvshmemError(fmt::format("{}: {} exists and is not a socket; refusing to replace it",
                                     kContext, options_.socket_path));
    // The server's lock covers this path too: a socket here was left by a dead server.
    if (::unlink(options_.socket_path.c_str()) != 0 && errno != ENOENT)
      throw_syscall(kContext, "unlink", options_.socket_path);
    log_(fmt::format("removed the stale channel socket {} a dead server left",
                     options_.socket_path));
  }
  posix::UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) throw_syscall(kContext, "socket", "AF_UNIX, SOCK_SEQPACKET");
  sockaddr_un address = unix_address(options_.socket_path);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    throw_syscall(kContext, "bind", options_.socket_path);
  owns_socket_ = true;
  // Only the owner's uid may even connect; SO_PEERCRED and the enrolment decide the rest.
  if (::chmod(options_.socket_path.c_str(), 0600) != 0)
    throw_syscall(kContext, "chmod", options_.socket_path);
  if (::listen(fd.get(), 16) != 0) throw_syscall(kContext, "listen", options_.socket_path);
  listen_fd_ = std::move(fd);
}

std::vector<int> ChannelBroker::poll_fds() const {
  std::vector<int> fds{listen_fd_.get()};
  for (const auto& [fd, client] : clients_) fds.push_back(fd);
  return fds;
}

void ChannelBroker::on_ready(int fd, short revents) {
  if (fd == listen_fd_.get()) {
    accept_client();
    return;
  }
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  (void)revents; // a hang-up reads as EOF below
  serve(it->second);
}

void ChannelBroker::accept_client() {
  for (int i = 0; i < 16; ++i) {
    posix::UniqueFd socket(
        ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!socket) return; // EAGAIN, or out of fds: the connection waits in the backlog
    if (clients_.size() >= options_.max_clients) {
      log_(fmt::format("refusing a channel client: {} connected, the maximum", clients_.size()));
      continue; // closing it tells the client
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(socket.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      log_(syscall_message("getsockopt", "SO_PEERCRED", errno) + "; refusing the client");
      continue;
    }
    Client client;
    client.pid = cred.pid;
    client.uid = cred.uid;
    const int fd = socket.get();
    client.socket = std::move(socket);
    clients_.emplace(fd, std::move(client));
  }
}

bool ChannelBroker::refuse(broker::Reply& reply, const std::string& why) {
  reply.op = broker::Op::refused;
  std::snprintf(reply.reason, sizeof reply.reason, "%s", why.c_str());
  ++refusals_;
  return true;
}

posix::UniqueFd ChannelBroker::make_region(const ChannelKey& key, std::uint64_t bytes,
                                           std::string& why) {
  const std::string name =
      fmt::format("ivmc-channel-{}-{}-{}", std::get<0>(key), std::get<1>(key), std::get<2>(key));
  posix::UniqueFd fd(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) {
    why = syscall_message("memfd_create", name, errno);
    return {};
  }
  // Sized once, then sealed: no member can shrink it (the SIGBUS of issue 16), grow it, or
  // lift the seals; the kernel refuses with EPERM.
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0 ||
      ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    why = syscall_message("ftruncate/F_ADD_SEALS", name, errno);
    return {};
  }
  return fd;
}

bool ChannelBroker::handle(Client& client, const broker::Request& request, broker::Reply& reply,
                           int& fd_to_send) {
  if (request.magic != broker::kMagic || request.version != broker::kVersion) return false;
  if (request.op == broker::Op::hello) {
    if (client.vm) return false; // once only
    const Enrolment* found = nullptr;
    for (const Enrolment& e : options_.enrolments)
      if (same_token(e.token, request.token)) found = &e;
    if (found == nullptr)
      return refuse(reply, fmt::format("pid {} (uid {}) presented a token that is not enrolled",
                                       client.pid, client.uid));
    if (found->uid != client.uid)
      return refuse(reply, fmt::format("the token of vm {} is enrolled for uid {}, not for uid {} "
                                       "(pid {})",
                                       found->vm, found->uid, client.uid, client.pid));
    if (!found->exec &&
        (request.ivshmem_peer_id > 0xffff ||
         pid_of_peer_(static_cast<std::uint16_t>(request.ivshmem_peer_id)) != client.pid))
      return refuse(reply, fmt::format("ivshmem peer {} is not a connection of pid {}",
                                       request.ivshmem_peer_id, client.pid));
    // One live VM per enrolment: the server names a channel's member by its VM, so a second
    // process holding the same token would make that name ambiguous (and a copied token must
    // not stand in for a VM that is alive). A connection whose main-socket peer has left (a
    // process that moved to another host and may come back) no longer counts, and loses its VM.
    // An exec-mode VM (`ivmc exec`) is one program and its children: its processes share
    // the VM by design, and each channel is named by its ports as well (pending connections).
    for (auto& [fd, other] : clients_) {
      if (found->exec) break;
      if (&other == &client || other.vm != found->vm) continue;
      if (other.ivshmem_peer_id <= 0xffff &&
          pid_of_peer_(static_cast<std::uint16_t>(other.ivshmem_peer_id)) == other.pid)
        return refuse(reply, fmt::format("vm {} is already enrolled by pid {} (ivshmem peer {}): "
                                         "one live process per vm",
                                         found->vm, other.pid, other.ivshmem_peer_id));
      other.vm.reset(); // its peer left the main socket: that enrolment is over
    }
    client.vm = found->vm;
    client.ivshmem_peer_id = request.ivshmem_peer_id;
    reply.op = broker::Op::welcome;
    reply.vm = found->vm;
    log_(fmt::format("vm {} enrolled: pid {}, uid {}, ivshmem peer {}", found->vm, client.pid,
                     client.uid, request.ivshmem_peer_id));
    return true;
  }
  if (request.op != broker::Op::open) return handle_exec(client, request, reply, fd_to_send);
  if (!client.vm) return refuse(reply, "open before a successful hello: not enrolled");
  const VmId self = *client.vm;
  const VmId peer = request.peer_vm;
  reply.vm = peer;
  reply.key = request.key;
  if (peer == self)
    return refuse(reply, fmt::format("vm {} asked for a channel with itself", self));
  if (const Enrolment* mine = enrolment_of(self); mine != nullptr && mine->exec)
    return refuse(reply, "an exec-mode VM opens channels with connect/accept, not open");
  if (options_.trust && !options_.trust->may_connect(self, peer)) {
    const bool a = options_.trust->allows(self, peer), b = options_.trust->allows(peer, self);
    return refuse(reply,
                  fmt::format("the trust list does not admit vm {} and vm {} ({})", self, peer,
                              !a && !b ? "neither allows the other"
                              : !a     ? fmt::format("vm {} does not allow vm {}", self, peer)
                                       : fmt::format("vm {} does not allow vm {}", peer, self)));
  }
  const ChannelKey key{std::min(self, peer), std::max(self, peer), request.key};
  auto it = channels_.find(key);
  if (it == channels_.end()) {
    if (request.bytes == 0)
      return refuse(reply, fmt::format("channel {} of vm {} and vm {} does not exist yet",
                                       request.key, self, peer));
    if (request.bytes > options_.max_bytes || request.bytes % 4096 != 0)
      return refuse(reply, fmt::format("{} bytes: a region must be a page multiple of at most {}",
                                       request.bytes, options_.max_bytes));
    std::string why;
    posix::UniqueFd memfd = make_region(key, request.bytes, why);
    if (!memfd) return refuse(reply, why);
    if (channels_.size() >= options_.max_channels) { // forget the oldest (members keep theirs)
      channels_.erase(order_.front());
      order_.pop_front();
    }
    it = channels_.emplace(key, Region{std::move(memfd), request.bytes, {false, false}}).first;
    order_.push_back(key);
  } else if (request.bytes != 0 && request.bytes != it->second.bytes) {
    return refuse(reply, fmt::format("channel {} of vm {} and vm {} exists with {} bytes, not {}",
                                     request.key, self, peer, it->second.bytes, request.bytes));
  }
  reply.op = broker::Op::region;
  reply.bytes = it->second.bytes;
  for (const auto& [fd, other] : clients_)
    if (other.vm == peer) reply.peer_ivshmem_id = other.ivshmem_peer_id;
  fd_to_send = it->second.memfd.get();
  it->second.handed[self == std::get<0>(key) ? 0 : 1] = true;
  return true;
}

void ChannelBroker::forget_if_complete(const ChannelKey& key) {
  auto it = channels_.find(key);
  if (it == channels_.end() || !it->second.handed[0] || !it->second.handed[1]) return;
  // Both members hold it now; their mappings keep the memory, and it goes when both unmap.
  channels_.erase(it);
  order_.erase(std::find(order_.begin(), order_.end(), key));
}

void ChannelBroker::serve(Client& client) {
  const int fd = client.socket.get();
  for (;;) {
    broker::Request request;
    const ssize_t n = ::recv(fd, &request, sizeof request, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) return drop(fd, n == 0 ? "disconnected" : syscall_message("recv", "", errno));
    if (n != static_cast<ssize_t>(sizeof request))
      return drop(fd,
                  fmt::format("sent a {}-byte packet; requests are {} bytes", n, sizeof request));
    broker::Reply reply;
    int fd_to_send = -1;
    if (!handle(client, request, reply, fd_to_send))
      return drop(fd, "sent a malformed or out-of-order request");
    if (reply.op == broker::Op::refused) log_(fmt::format("refused: {}", reply.reason));
    iovec iov{&reply, sizeof reply};
    msghdr header{};
    header.msg_iov = &iov;
    header.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (fd_to_send >= 0) {
      header.msg_control = control;
      header.msg_controllen = sizeof control;
      cmsghdr* cmsg = CMSG_FIRSTHDR(&header);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(cmsg), &fd_to_send, sizeof fd_to_send);
    }
    // One reply per request, and a client waits for it before the next: the socket buffer
    // always has room; if it does not, the client is not following the protocol.
    const bool sent =
        ::sendmsg(fd, &header, MSG_DONTWAIT | MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof reply);
    const int err = errno;
    if (reply.op == broker::Op::region) {
      const VmId self = *client.vm;
      forget_if_complete({std::min(self, reply.vm), std::max(self, reply.vm), reply.key});
    }
    if (!sent) return drop(fd, syscall_message("sendmsg", "a reply", err));
  }
}

void ChannelBroker::peer_left(std::uint16_t id) {
  std::erase_if(clients_, [id](const auto& entry) { return entry.second.ivshmem_peer_id == id; });
}

void ChannelBroker::drop(int fd, std::string_view why) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  if (why != "disconnected")
    log_(fmt::format("channel client pid {} {}; dropped", it->second.pid, why));
  const std::optional<VmId> ended =
      it->second.owns_enrolment ? it->second.vm : std::optional<VmId>{};
  clients_.erase(it);
  if (ended) end_enrolment(*ended);
}

// ---------------------------------------------------------------------------------------------
// Exec mode: processes enrol themselves and meet by TCP port (channel_broker_protocol.hpp)

const Enrolment* ChannelBroker::enrolment_of(VmId vm) const {
  for (const Enrolment& e : options_.enrolments)
    if (e.vm == vm) return &e;
  return nullptr;
}

void ChannelBroker::end_enrolment(VmId vm) {
  std::erase_if(options_.enrolments, [vm](const Enrolment& e) { return e.exec && e.vm == vm; });
  std::erase_if(listeners_, [vm](const auto& entry) { return entry.second == vm; });
  std::erase_if(pending_, [vm](const auto& entry) {
    return entry.second.client == vm || entry.second.listener == vm;
  });
  // Its children's connections, still open, are that VM no longer.
  std::erase_if(clients_, [vm](const auto& entry) { return entry.second.vm == vm; });
  log_(fmt::format("exec vm {} left", vm));
}

bool ChannelBroker::same_group(VmId client, VmId listener) const {
  const Enrolment* a = enrolment_of(client);
  const Enrolment* b = enrolment_of(listener);
  return a != nullptr && b != nullptr && a->exec && b->exec && a->group == b->group;
}

void ChannelBroker::bind_listener(Pending& p, VmId listener) {
  const ChannelKey old{p.client, p.client, p.region_key};
  const ChannelKey key{std::min(p.client, listener), std::max(p.client, listener), p.region_key};
  p.listener = listener;
  p.stage = Pending::Stage::pending;
  if (old == key) return;
  auto node = channels_.extract(old);
  if (node.empty()) return; // forgotten (beyond max_channels): accept says so
  node.key() = key;
  node.mapped().handed[0] = node.mapped().handed[1] = false;
  node.mapped().handed[p.client == std::get<0>(key) ? 0 : 1] = true; // the client has its copy
  channels_.insert(std::move(node));
  std::replace(order_.begin(), order_.end(), old, key);
}

void ChannelBroker::forget_pending(std::uint32_t ports, bool with_region) {
  const auto it = pending_.find(ports);
  if (it == pending_.end()) return;
  const Pending& p = it->second;
  if (with_region) {
    const ChannelKey key{std::min(p.client, p.listener), std::max(p.client, p.listener),
                         p.region_key};
    if (channels_.erase(key) != 0) std::erase(order_, key);
  }
  pending_.erase(it);
  std::erase(pending_order_, ports);
}

bool ChannelBroker::handle_exec(Client& client, const broker::Request& request,
                                broker::Reply& reply, int& fd_to_send) {
  if (!options_.exec_enrolment) return false;
  if (request.op == broker::Op::join) {
    if (client.vm) return false; // once only
    if (client.uid != ::getuid())
      return refuse(reply, fmt::format("pid {} is uid {}; this exec server serves uid {} only",
                                       client.pid, client.uid, ::getuid()));
    for (const Enrolment& e : options_.enrolments)
      if (same_token(e.token, request.token)) return refuse(reply, "that token is enrolled");
    Enrolment e;
    std::memcpy(e.token.data(), request.token, e.token.size());
    e.uid = client.uid;
    e.vm = next_exec_vm_++;
    e.exec = true;
    e.group = request.key;
    options_.enrolments.push_back(e);
    client.vm = e.vm;
    client.owns_enrolment = true;
    reply.op = broker::Op::welcome;
    reply.vm = e.vm;
    log_(fmt::format("exec vm {} joined: pid {}, uid {}", e.vm, client.pid, client.uid));
    return true;
  }
  if (!client.vm) return refuse(reply, "not enrolled (join or hello first)");
  const VmId self = *client.vm;
  const Enrolment* mine = enrolment_of(self);
  if (mine == nullptr || !mine->exec) return refuse(reply, "not an exec-mode VM");
  const auto ports = static_cast<std::uint32_t>(request.key);
  reply.key = request.key;
  switch (request.op) {
  case broker::Op::listen: {
    if (request.key == 0 || request.key > 0xffff) return refuse(reply, "not a TCP port");
    listeners_[static_cast<std::uint16_t>(request.key)] = self;
    reply.op = broker::Op::ok;
    return true;
  }
  case broker::Op::connect: {
    const auto port = static_cast<std::uint16_t>(ports & 0xffff);
    if (request.key > 0xffffffffu) return refuse(reply, "not a pair of TCP ports");
    const auto it = listeners_.find(port);
    const bool tentative = it == listeners_.end();
    if (!tentative && !same_group(self, it->second))
      return refuse(reply, fmt::format("the listener on port {} (vm {}) is not in vm {}'s trust "
                                       "group",
                                       port, it->second, self));
    if (request.bytes == 0 || request.bytes > options_.max_bytes || request.bytes % 4096 != 0)
      return refuse(reply, fmt::format("{} bytes: a region must be a page multiple of at most {}",
                                       request.bytes, options_.max_bytes));
    // A tentative region is keyed by the client alone until its listener is known.
    const VmId listener = tentative ? self : it->second;
    const ChannelKey key{std::min(self, listener), std::max(self, listener), next_region_key_++};
    std::string why;
    posix::UniqueFd memfd = make_region(key, request.bytes, why);
    if (!memfd) return refuse(reply, why);
    if (pending_.size() >= options_.max_pending) { // forget the oldest record
      pending_.erase(pending_order_.front());
      pending_order_.pop_front();
    }
    if (pending_.contains(ports)) std::erase(pending_order_, ports);
    pending_[ports] = Pending{self, listener, std::get<2>(key),
                              tentative ? Pending::Stage::tentative : Pending::Stage::pending};
    pending_order_.push_back(ports);
    if (channels_.size() >= options_.max_channels) { // forget the oldest (members keep theirs)
      channels_.erase(order_.front());
      order_.pop_front();
    }
    auto& region = channels_.emplace(key, Region{std::move(memfd), request.bytes, {false, false}})
                       .first->second;
    order_.push_back(key);
    region.handed[self == std::get<0>(key) ? 0 : 1] = true; // a pair with itself: 0 here
    reply.op = broker::Op::region;
    reply.vm = tentative ? broker::kNoListener : it->second;
    reply.key = std::get<2>(key);
    reply.bytes = request.bytes;
    fd_to_send = region.memfd.get();
    return true;
  }
  case broker::Op::confirm: {
    const auto found = pending_.find(ports);
    if (request.key > 0xffffffffu || found == pending_.end() || found->second.client != self ||
        found->second.stage == Pending::Stage::pending)
      return refuse(reply, "no tentative connection of this VM for these ports");
    Pending& p = found->second;
    const auto port = static_cast<std::uint16_t>(ports & 0xffff);
    switch (p.stage) {
    case Pending::Stage::taken:
      forget_pending(ports, false);
      reply.op = broker::Op::ok;
      return true;
    case Pending::Stage::refused:
      forget_pending(ports, false);
      return refuse(reply, fmt::format("the listener on port {} took this connection as kernel "
                                       "TCP",
                                       port));
    default:
      break;
    }
    const auto it = listeners_.find(port);
    if (it == listeners_.end() || !same_group(self, it->second)) {
      forget_pending(ports, true);
      return refuse(reply,
                    it == listeners_.end()
                        ? fmt::format("no exec-mode listener on port {}", port)
                        : fmt::format("the listener on port {} (vm {}) is not in vm {}'s trust "
                                      "group",
                                      port, it->second, self));
    }
    bind_listener(p, it->second); // a listener registered after the connect: pending now
    reply.op = broker::Op::ok;
    return true;
  }
  case broker::Op::accept: {
    const auto it = pending_.find(ports);
    if (request.key > 0xffffffffu || it == pending_.end())
      return refuse(reply, "no pending exec-mode connection for these ports");
    Pending& p = it->second;
    if (p.stage == Pending::Stage::tentative) {
      // Its client's confirm has not come yet: the port's registered listener takes it if
      // it may, and confirm tells the client; anyone else leaves it to confirm.
      const auto listener = listeners_.find(static_cast<std::uint16_t>(ports & 0xffff));
      if (listener == listeners_.end() || listener->second != self)
        return refuse(reply, "no pending exec-mode connection for these ports");
      if (!same_group(p.client, self)) {
        ChannelKey key{p.client, p.client, p.region_key};
        if (channels_.erase(key) != 0) std::erase(order_, key);
        p.stage = Pending::Stage::refused;
        return refuse(reply, fmt::format("the connection from vm {} is not of vm {}'s trust group",
                                         p.client, self));
      }
      bind_listener(p, self);
      p.stage = Pending::Stage::taken;
    } else if (p.stage != Pending::Stage::pending || p.listener != self) {
      return refuse(reply, "no pending exec-mode connection for these ports");
    }
    const Pending taken = p;
    if (taken.stage == Pending::Stage::pending) forget_pending(ports, false);
    const ChannelKey key{std::min(taken.client, taken.listener),
                         std::max(taken.client, taken.listener), taken.region_key};
    const auto region = channels_.find(key);
    if (region == channels_.end()) {
      if (taken.stage == Pending::Stage::taken) pending_[ports].stage = Pending::Stage::refused;
      return refuse(reply, "the connection's region was forgotten");
    }
    region->second.handed[self == std::get<1>(key) ? 1 : 0] = true; // itself: 1 here
    reply.op = broker::Op::region;
    reply.vm = taken.client;
    reply.key = taken.region_key;
    reply.bytes = region->second.bytes;
    fd_to_send = region->second.memfd.get();
    return true;
  }
  case broker::Op::cancel: {
    const auto it = pending_.find(ports);
    if (request.key > 0xffffffffu || it == pending_.end() || it->second.client != self ||
        (it->second.stage != Pending::Stage::pending &&
         it->second.stage != Pending::Stage::tentative))
      return refuse(reply, "no pending connection of this VM for these ports (accepted?)");
    forget_pending(ports, true);
    reply.op = broker::Op::ok;
    return true;
  }
  default:
    return false;
  }
}

} // namespace ivmc::kvm
