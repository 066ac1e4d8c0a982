// The client side of the ivmc channel socket (channel_broker_protocol.hpp): a host process
// enrols with its token and asks for channel regions by the other member's VM. Each region it
// gets is checked before it is mapped: a memfd of exactly the size the server named, carrying
// the seals that make it impossible to shrink (no SIGBUS a member can cause) or to unseal; an
// unsealed or resized fd is refused. Thread-safe (one request at a time).
#pragma once

#include "ivmc/core/membership.hpp"
#include "ivmc/kvm/channel_broker.hpp"
#include "ivmc/kvm/error.hpp"
#include "ivmc/kvm/ivshmem_platform.hpp"
#include "ivmc/posix/unique_fd.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace ivmc::kvm {

// The server refused (not enrolled, not admitted by the trust list, no such channel yet...);
// what() carries its reason.
class ChannelRefused : public IvshmemError {
public:
  using IvshmemError::IvshmemError;
};

class ChannelBrokerClient {
public:
  // Connects to `socket_path` and enrols as the holder of `token`, whose main-socket
  // connection is `ivshmem_peer_id`. Throws ChannelRefused or IvshmemError.
  ChannelBrokerClient(const std::string& socket_path, const EnrolmentToken& token,
                      std::uint16_t ivshmem_peer_id, Nanos timeout);
  VmId vm() const { return vm_; } // the VM the server says this process is

  // The region of channel `key` with `peer`: created with `bytes` (a page multiple) if it does
  // not exist, or joined (`bytes` 0). Mapped read-write, shared. Throws ChannelRefused.
  std::shared_ptr<const PrivateRegion> open(VmId peer, std::uint64_t key, std::size_t bytes,
                                            Nanos timeout);

private:
  broker::Reply exchange(const broker::Request& request, posix::UniqueFd& fd, Nanos timeout);
  std::string socket_path_;
  std::mutex mutex_; // one request at a time
  posix::UniqueFd socket_;
  VmId vm_ = 0;
};

} // namespace ivmc::kvm
