// The host platform: host processes as ivshmem peers. A HostPlatform is an IvshmemPlatform
// (ivshmem_platform.hpp: endpoints, the ticker) whose device is a connection to an ivshmem
// server (the "host"): the server's shared region, eventfd doorbells, and the server's
// peer-disconnect notices.
#pragma once

#include "ivmc/kvm/channel_broker_client.hpp"
#include "ivmc/kvm/eventfd_doorbell.hpp"
#include "ivmc/kvm/ivshmem_peer.hpp"
#include "ivmc/kvm/ivshmem_platform.hpp"

#include <memory>
#include <optional>
#include <string>

namespace ivmc::kvm {

using HostEndpoint = IvshmemEndpoint;

class HostPlatform final : public IvshmemPlatform {
public:
  // Connects to the ivshmem server at `socket_path` and starts the ticker. `vectors` must be
  // the server's (the protocol does not carry it). With a `token`, also enrols on the server's
  // channel socket ("<socket_path>.ivmc"), so that open_region() works. Throws on failure
  // (ChannelRefused when the server refuses the token, naming why).
  static std::unique_ptr<HostPlatform> connect(const std::string& socket_path, Nanos timeout,
                                               unsigned vectors = IvshmemPeer::kDefaultVectors,
                                               const std::optional<EnrolmentToken>& token = {});

  // The VM the server enrolled this process as; nothing without a token.
  std::optional<VmId> enrolled_vm() const;
  // The sealed region of channel `key` with VM `peer`, handed by the server to the two of
  // them only: created with `bytes` (a page multiple) or joined (`bytes` 0). Put it in
  // EndpointOptions::region. Throws ChannelRefused naming why (not enrolled, the trust list,
  // no such channel yet), IvshmemError on anything else.
  std::shared_ptr<const PrivateRegion> open_region(VmId peer, std::uint64_t key, std::size_t bytes,
                                                   Nanos timeout);

private:
  explicit HostPlatform(IvshmemPeer peer);
  std::unique_ptr<ChannelBrokerClient> broker_;
};

} // namespace ivmc::kvm
