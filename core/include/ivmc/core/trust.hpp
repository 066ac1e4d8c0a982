// Explicit trust between co-resident VMs (survey 3.6.2): a VM attaches to a peer's shared
// memory only if it chose that peer. Default deny; a connection needs both sides' consent.
// Single-threaded: the platform serialises calls.
#pragma once

#include "ivmc/core/membership.hpp"

#include <cstdint>
#include <unordered_map>
#include <unordered_set>

namespace ivmc {

class TrustList {
public:
  // `vm` accepts channels with `peer` (one direction).
  void allow(VmId vm, VmId peer);
  void revoke(VmId vm, VmId peer);
  bool allows(VmId vm, VmId peer) const;
  // Both allow each other. A refusal is counted, against each VM that did not allow the other.
  bool may_connect(VmId a, VmId b);

  std::uint64_t refusals() const { return refusals_; }
  // Refusals caused by `vm` not allowing the other side.
  std::uint64_t refusals_by(VmId vm) const;

private:
  static std::uint64_t key(VmId vm, VmId peer) { return (std::uint64_t(vm) << 32) | peer; }
  std::unordered_set<std::uint64_t> allowed_;
  std::unordered_map<VmId, std::uint64_t> refusals_by_;
  std::uint64_t refusals_ = 0;
};

} // namespace ivmc
