// The host platform: see include/ivmc/kvm/host_platform.hpp.
#include "ivmc/kvm/host_platform.hpp"

#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ivmc::kvm {
namespace {

// The ivshmem device of a host process: its connection to the server.
class ServerPort final : public IvshmemPort {
public:
  explicit ServerPort(IvshmemPeer peer) : peer_(std::move(peer)) {}
  SharedRegion region() const override { return peer_.region(); }
  std::uint16_t id() const override { return peer_.id(); }
  unsigned vectors() const override { return peer_.vectors(); }

  std::unique_ptr<Doorbell> doorbell_to(std::uint16_t remote, WakeVectors remote_vectors,
                                        WakeVectors own) override {
    peer_.process_server_messages();
    if (!peer_.has_peer(remote)) return nullptr; // its eventfds are not announced yet
    return std::make_unique<EventfdDoorbell>(peer_, remote, remote_vectors, own);
  }

  std::vector<std::uint16_t> departed() override {
    peer_.process_server_messages();
    std::vector<std::uint16_t> gone;
    for (const PeerEvent& ev : peer_.take_events()) {
      if (ev.kind == PeerEvent::Kind::left) gone.push_back(ev.peer_id);
    }
    return gone;
  }

  void disconnect() override {
    peer_.disconnect();
    left_ = true;
  }

  int notice_fd() const override { return peer_.server_fd(); }

  std::string server_gone() const override {
    if (left_ || peer_.server_link() == ServerLink::connected) return {};
    return peer_.server_error();
  }

  void wake_own(WakeVectors vectors) override {
    const std::uint64_t one = 1;
    for (unsigned v : {vectors.data, vectors.space}) {
      // EAGAIN: the counter is saturated, so a wake-up is pending anyway.
      if (const int fd = peer_.own_vector_fd(v); fd >= 0) (void)!::write(fd, &one, sizeof one);
    }
  }

private:
  IvshmemPeer peer_;
  bool left_ = false; // this process disconnected on purpose: not the server's death
};

} // namespace

std::unique_ptr<HostPlatform> HostPlatform::connect(const std::string& socket_path, Nanos timeout,
                                                    unsigned vectors,
                                                    const std::optional<EnrolmentToken>& token) {
  IvshmemPeer peer = IvshmemPeer::connect(socket_path, timeout, vectors);
  const std::uint16_t id = peer.id();
  std::unique_ptr<HostPlatform> platform(new HostPlatform(std::move(peer)));
  if (token) {
    platform->broker_ =
        std::make_unique<ChannelBrokerClient>(socket_path + ".ivmc", *token, id, timeout);
  }
  return platform;
}

std::optional<VmId> HostPlatform::enrolled_vm() const {
  if (!broker_) return std::nullopt;
  return broker_->vm();
}

std::shared_ptr<const PrivateRegion> HostPlatform::open_region(VmId peer, std::uint64_t key,
                                                               std::size_t bytes, Nanos timeout) {
  if (!broker_)
    throw ChannelRefused("open_region: this process did not enrol on the server's channel socket "
                         "(no token)");
  return broker_->open(peer, key, bytes, timeout);
}

HostPlatform::HostPlatform(IvshmemPeer peer)
    : IvshmemPlatform(std::make_unique<ServerPort>(std::move(peer))) {}

} // namespace ivmc::kvm
