// A domU's view as dom0's view service writes it (backends/xen/tools/view_service.hpp):
// "VERSION NAME:DOMID ...", the VMs it may reach through a ring. The domU reads it from
// XenStore, so it is parsed as hostile input: no Xen library needed, unit-tested anywhere.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace ivmc::xen {

struct FollowView {
  std::uint64_t version = 0;
  std::map<std::string, std::uint32_t> peers; // VM name -> domain id
};
inline constexpr std::size_t kMaxViewPeers = 8;
// nullopt when `text` is not such a view: a version (decimal, 32 bits), then at most
// kMaxViewPeers distinct NAME:DOMID words, names [a-z0-9_-] of 1-32 characters, domain ids
// 1..kMaxDomainId. A torn or hostile value is treated as no view.
std::optional<FollowView> parse_follow_view(std::string_view text);

} // namespace ivmc::xen
