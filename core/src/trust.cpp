#include "ivmc/core/trust.hpp"

namespace ivmc {

void TrustList::allow(VmId vm, VmId peer) {
  allowed_.insert(key(vm, peer));
}
void TrustList::revoke(VmId vm, VmId peer) {
  allowed_.erase(key(vm, peer));
}
bool TrustList::allows(VmId vm, VmId peer) const {
  return allowed_.count(key(vm, peer)) != 0;
}

bool TrustList::may_connect(VmId a, VmId b) {
  bool ab = allows(a, b), ba = allows(b, a);
  if (ab && ba) return true;
  ++refusals_;
  if (!ab) ++refusals_by_[a];
  if (!ba) ++refusals_by_[b];
  return false;
}

std::uint64_t TrustList::refusals_by(VmId vm) const {
  auto it = refusals_by_.find(vm);
  return it == refusals_by_.end() ? 0 : it->second;
}

} // namespace ivmc
