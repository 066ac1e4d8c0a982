// The host platform: see include/ivmc/kvm/host_platform.hpp.
#include "ivmc/kvm/host_platform.hpp"

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

  void disconnect() override { peer_.disconnect(); }

private:
  IvshmemPeer peer_;
};

} // namespace

std::unique_ptr<HostPlatform> HostPlatform::connect(const std::string& socket_path, Nanos timeout,
                                                    unsigned vectors) {
  return std::unique_ptr<HostPlatform>(
      new HostPlatform(IvshmemPeer::connect(socket_path, timeout, vectors)));
}

HostPlatform::HostPlatform(IvshmemPeer peer)
    : IvshmemPlatform(std::make_unique<ServerPort>(std::move(peer))) {}

} // namespace ivmc::kvm
