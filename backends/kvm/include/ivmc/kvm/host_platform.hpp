// The host platform: host processes as ivshmem peers. A HostPlatform is an IvshmemPlatform
// (ivshmem_platform.hpp: endpoints, the ticker) whose device is a connection to an ivshmem
// server (the "host"): the server's shared region, eventfd doorbells, and the server's
// peer-disconnect notices.
#pragma once

#include "ivmc/kvm/eventfd_doorbell.hpp"
#include "ivmc/kvm/ivshmem_peer.hpp"
#include "ivmc/kvm/ivshmem_platform.hpp"

#include <memory>
#include <string>

namespace ivmc::kvm {

using HostEndpoint = IvshmemEndpoint;

class HostPlatform final : public IvshmemPlatform {
public:
  // Connects to the ivshmem server at `socket_path` and starts the ticker. `vectors` must be
  // the server's (the protocol does not carry it). Throws on failure.
  static std::unique_ptr<HostPlatform> connect(const std::string& socket_path, Nanos timeout,
                                               unsigned vectors = IvshmemPeer::kDefaultVectors);

private:
  explicit HostPlatform(IvshmemPeer peer);
};

} // namespace ivmc::kvm
