// See include/ivmc/xen/follow_view.hpp.
#include "ivmc/xen/follow_view.hpp"

#include "ivmc/xen/offer_record.hpp"

#include <cstdint>
#include <sstream>

namespace ivmc::xen {

std::optional<FollowView> parse_follow_view(std::string_view text) {
  FollowView v;
  std::istringstream in{std::string(text)};
  std::string word;
  if (!(in >> word)) return std::nullopt;
  std::uint32_t version = 0;
  if (!parse_decimal(word, UINT32_MAX, version)) return std::nullopt;
  v.version = version;
  while (in >> word) {
    const std::size_t colon = word.find(':');
    if (colon == std::string::npos || colon == 0 || colon > 32) return std::nullopt;
    const std::string name = word.substr(0, colon);
    for (const char c : name)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
        return std::nullopt;
    std::uint32_t domid = 0;
    if (!parse_decimal(word.substr(colon + 1), kMaxDomainId, domid) || domid == 0)
      return std::nullopt;
    if (v.peers.size() >= kMaxViewPeers || !v.peers.emplace(name, domid).second)
      return std::nullopt;
  }
  return v;
}

} // namespace ivmc::xen
