// The XenStore rendezvous record: see include/ivmc/xen/offer_record.hpp.
#include "ivmc/xen/offer_record.hpp"

#include <algorithm>
#include <unordered_set>

#include "format.hpp"

namespace ivmc::xen {

namespace {

// A value as it may appear in an error message: short and printable.
std::string shown(std::string_view value) {
  std::string out;
  for (const char c : value.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (value.size() > 40) out += "...";
  return "'" + out + "'";
}

bool job_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' ||
         c == '_' || c == '-' || c == '=' || c == '.' || c == ':' || c == ',';
}

} // namespace

std::string offer_path(std::uint32_t offerer, std::uint32_t mapper, std::string_view name) {
  return detail::format("/local/domain/{}/data/ivmc/{}/{}", offerer, mapper, name);
}

bool valid_channel_name(std::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

bool parse_decimal(std::string_view text, std::uint32_t max, std::uint32_t& out) {
  if (text.empty() || text.size() > 10) return false;
  if (text.size() > 1 && text[0] == '0') return false;
  std::uint64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (value > max) return false;
  out = static_cast<std::uint32_t>(value);
  return true;
}

std::vector<std::pair<std::string, std::string>> offer_entries(const OfferRecord& r) {
  std::string refs;
  for (const std::uint32_t ref : r.ring_refs) {
    if (!refs.empty()) refs += ',';
    refs += std::to_string(ref);
  }
  std::vector<std::pair<std::string, std::string>> out = {
      {"version", std::to_string(kRecordVersion)},   {"peer", std::to_string(r.peer)},
      {"pages", std::to_string(r.ring_refs.size())}, {"ring-refs", refs},
      {"live-ref", std::to_string(r.live_ref)},      {"data-port", std::to_string(r.data_port)},
      {"space-port", std::to_string(r.space_port)},
  };
  if (!r.job.empty()) out.emplace_back("job", r.job);
  out.emplace_back("state", "offered");
  return out;
}

ParsedOffer parse_offer(const std::function<std::optional<std::string>(std::string_view)>& read,
                        std::uint32_t self) {
  ParsedOffer result;
  OfferRecord r;
  auto fail = [&](std::string why) {
    result.error = std::move(why);
    return result;
  };
  // One numeric key: present, strict decimal, within [min, max].
  auto number = [&](std::string_view key, std::uint32_t min, std::uint32_t max,
                    std::uint32_t& out) -> std::string {
    const std::optional<std::string> text = read(key);
    if (!text) return detail::format("offer record: '{}' is missing", key);
    if (!parse_decimal(*text, max, out) || out < min)
      return detail::format("offer record: '{}' = {} is not a number in [{}, {}]", key,
                            shown(*text), min, max);
    return {};
  };

  const std::optional<std::string> state = read("state");
  result.not_ready = !state || *state != "offered";
  if (!state) return fail("offer record: 'state' is missing (not offered yet)");
  if (*state != "offered")
    return fail(detail::format("offer record: 'state' = {} (expected 'offered')", shown(*state)));
  std::uint32_t version = 0, pages = 0;
  if (auto e = number("version", 1, 1000, version); !e.empty()) return fail(e);
  if (version != kRecordVersion)
    return fail(
        detail::format("offer record: version {} (this build speaks {})", version, kRecordVersion));
  if (auto e = number("peer", 0, kMaxDomainId, r.peer); !e.empty()) return fail(e);
  if (r.peer != self)
    return fail(
        detail::format("offer record: offered to domain {}, but this is domain {}", r.peer, self));
  if (auto e = number("pages", 1, kMaxRecordPages, pages); !e.empty()) return fail(e);
  if (auto e = number("live-ref", kFirstGrantRef, UINT32_MAX, r.live_ref); !e.empty())
    return fail(e);
  if (auto e = number("data-port", 1, kMaxEventChannelPort, r.data_port); !e.empty())
    return fail(e);
  if (auto e = number("space-port", 1, kMaxEventChannelPort, r.space_port); !e.empty())
    return fail(e);
  if (r.data_port == r.space_port)
    return fail(detail::format("offer record: data-port and space-port are both {}", r.data_port));

  const std::optional<std::string> refs = read("ring-refs");
  if (!refs) return fail("offer record: 'ring-refs' is missing");
  // At most 10 digits and a comma per page: anything longer is not a list of `pages` refs.
  if (refs->size() > static_cast<std::size_t>(pages) * 11)
    return fail(detail::format("offer record: 'ring-refs' is {} bytes, too long for {} pages",
                               refs->size(), pages));
  std::unordered_set<std::uint32_t> seen{r.live_ref};
  std::string_view rest = *refs;
  for (std::size_t index = 0; !rest.empty() || index == 0; ++index) {
    const std::size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    std::uint32_t ref = 0;
    if (!parse_decimal(item, UINT32_MAX, ref) || ref < kFirstGrantRef)
      return fail(detail::format("offer record: 'ring-refs' item {} = {} is not a grant reference",
                                 index, shown(item)));
    if (!seen.insert(ref).second)
      return fail(detail::format("offer record: grant reference {} appears twice", ref));
    r.ring_refs.push_back(ref);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
    if (rest.empty()) return fail("offer record: 'ring-refs' ends with a comma");
  }
  if (r.ring_refs.size() != pages)
    return fail(detail::format("offer record: 'ring-refs' lists {} references for {} pages",
                               r.ring_refs.size(), pages));

  if (const std::optional<std::string> job = read("job")) {
    if (job->size() > kMaxJobBytes || !std::all_of(job->begin(), job->end(), job_char))
      return fail(detail::format("offer record: 'job' = {} is too long or has bad characters",
                                 shown(*job)));
    r.job = *job;
  }
  result.record = std::move(r);
  return result;
}

} // namespace ivmc::xen
