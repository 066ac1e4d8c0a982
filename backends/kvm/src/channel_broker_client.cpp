// The ivmc channel socket's client side: see include/ivmc/kvm/channel_broker_client.hpp.
#include "ivmc/kvm/channel_broker_client.hpp"

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
#include <cstring>
#include <optional>
#include <vector>

#include <fmt/format.h>

namespace ivmc::kvm {
namespace {

using detail::syscall_message;

// A mapped channel region; unmapped when the last endpoint using it lets go.
class MappedRegion final : public PrivateRegion {
public:
  MappedRegion(void* base, std::size_t size, std::optional<std::uint16_t> member)
      : base_(base), size_(size), member_(member) {}
  ~MappedRegion() override { ::munmap(base_, size_); }
  SharedRegion region() const override { return {static_cast<std::byte*>(base_), size_}; }
  std::optional<std::uint16_t> member_peer_id() const override { return member_; }

private:
  void* base_;
  std::size_t size_;
  std::optional<std::uint16_t> member_;
};

} // namespace

ChannelBrokerClient::ChannelBrokerClient(const std::string& socket_path,
                                         const EnrolmentToken& token, std::uint16_t ivshmem_peer_id,
                                         Nanos timeout)
    : socket_path_(socket_path) {
  auto fail = [&](const std::string& what) {
    throw IvshmemError(fmt::format("channel socket {}: {}", socket_path_, what));
  };
  if (socket_path.size() >= sizeof(sockaddr_un::sun_path)) fail("path too long");
  socket_ = posix::UniqueFd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!socket_) fail(syscall_message("socket", "AF_UNIX, SOCK_SEQPACKET", errno));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  if (::connect(socket_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    fail(syscall_message("connect", socket_path, errno));
  broker::Request hello;
  hello.op = broker::Op::hello;
  hello.ivshmem_peer_id = ivshmem_peer_id;
  std::memcpy(hello.token, token.data(), token.size());
  posix::UniqueFd none;
  const broker::Reply reply = exchange(hello, none, timeout);
  if (reply.op != broker::Op::welcome) fail("expected a welcome to the hello");
  vm_ = reply.vm;
}

broker::Reply ChannelBrokerClient::exchange(const broker::Request& request, posix::UniqueFd& fd,
                                            Nanos timeout) {
  auto fail = [&](const std::string& what) {
    throw IvshmemError(fmt::format("channel socket {}: {}", socket_path_, what));
  };
  if (::send(socket_.get(), &request, sizeof request, MSG_NOSIGNAL) !=
      static_cast<ssize_t>(sizeof request))
    fail(syscall_message("send", "a request", errno) + " (the server is gone?)");
  pollfd pfd{socket_.get(), POLLIN, 0};
  const int ready = ::poll(&pfd, 1, static_cast<int>(std::max<Nanos>(timeout, 0) / 1'000'000));
  if (ready <= 0) fail("no reply in time");
  broker::Reply reply;
  iovec iov{&reply, sizeof reply};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)] = {};
  msghdr header{};
  header.msg_iov = &iov;
  header.msg_iovlen = 1;
  header.msg_control = control;
  header.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(socket_.get(), &header, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  // Take every fd first, so none leaks whatever is wrong below.
  std::vector<posix::UniqueFd> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&header); c != nullptr; c = CMSG_NXTHDR(&header, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    for (std::size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
      int f = -1;
      std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
      fds.emplace_back(f);
    }
  }
  if (n == 0) fail("the server closed the connection");
  if (n != static_cast<ssize_t>(sizeof reply) || (header.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
    fail(fmt::format("a malformed reply ({} bytes)", n));
  if (reply.magic != broker::kMagic || reply.version != broker::kVersion)
    fail("a reply with another magic or version");
  reply.reason[sizeof reply.reason - 1] = '\0';
  if (reply.op == broker::Op::refused)
    throw ChannelRefused(fmt::format("channel socket {}: refused: {}", socket_path_, reply.reason));
  if (fds.size() > 1) fail("a reply with more than one fd");
  if (!fds.empty()) fd = std::move(fds.front());
  return reply;
}

std::shared_ptr<const PrivateRegion> ChannelBrokerClient::open(VmId peer, std::uint64_t key,
                                                               std::size_t bytes, Nanos timeout) {
  std::lock_guard lock(mutex_);
  auto fail = [&](const std::string& what) {
    throw IvshmemError(
        fmt::format("channel socket {}: channel {} with vm {}: {}", socket_path_, key, peer, what));
  };
  broker::Request request;
  request.op = broker::Op::open;
  request.peer_vm = peer;
  request.key = key;
  request.bytes = bytes;
  posix::UniqueFd fd;
  const broker::Reply reply = exchange(request, fd, timeout);
  if (reply.op != broker::Op::region || !fd) fail("expected a region with its fd");
  if (reply.vm != peer || reply.key != key) fail("the reply names another channel");
  // Hostile-input checks on the fd before mapping it: a sealed memfd of the promised size.
  const int seals = ::fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0) fail(syscall_message("fcntl", "F_GET_SEALS (not a memfd?)", errno));
  if ((seals & broker::kRequiredSeals) != broker::kRequiredSeals)
    fail(fmt::format("the region's seals are {:#x}, not all of shrink, grow and seal: a member "
                     "could truncate it under us",
                     seals));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail(syscall_message("fstat", "the region", errno));
  if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
      static_cast<std::uint64_t>(st.st_size) != reply.bytes || (bytes != 0 && reply.bytes != bytes))
    fail(fmt::format("the region is {} bytes; the server said {}", st.st_size, reply.bytes));
  const auto size = static_cast<std::size_t>(st.st_size);
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (base == MAP_FAILED) fail(syscall_message("mmap", fmt::format("{} bytes", size), errno));
  std::optional<std::uint16_t> member;
  if (reply.peer_ivshmem_id <= 0xffff) member = static_cast<std::uint16_t>(reply.peer_ivshmem_id);
  return std::make_shared<MappedRegion>(base, size, member); // the mapping keeps the memfd
}

} // namespace ivmc::kvm
