// The XenStore rendezvous record of one channel, and its validation.
//
// The offering domain shares the channel's pages (gntshr) and binds two unbound event channels
// for the mapping domain, then publishes, under its own XenStore path (as libxenvchan and
// XenLoop do):
//
//   /local/domain/<offerer>/data/ivmc/<mapper>/<name>/
//       version      "1"
//       peer         the mapper's domain id (only it may read the record)
//       pages        number of pages of the channel area
//       ring-refs    their grant references, comma-separated, in page order
//       live-ref     grant reference of the liveness page (byte 0: offerer live, 1: mapper live)
//       data-port    event channel for Wake::data (the offerer's unbound port)
//       space-port   event channel for Wake::space
//       job          optional: what the mapper should run (the test agent's protocol)
//       state        "offered", written last
//
// Everything the mapper reads there was written by another domain: parse_offer() copies and
// checks every value (decimal only, in range, consistent) and names the first bad one.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ivmc::xen {

inline constexpr std::uint32_t kPageBytes = 4096;
inline constexpr std::uint32_t kRecordVersion = 1;
inline constexpr std::uint32_t kMaxRecordPages = 2048;        // 8 MiB: far above any ring we make
inline constexpr std::uint32_t kFirstGrantRef = 8;            // refs 0-7 are reserved by Xen
inline constexpr std::uint32_t kMaxEventChannelPort = 131071; // FIFO ABI limit (2^17 - 1)
inline constexpr std::uint32_t kMaxDomainId = 0x7fef;         // DOMID_FIRST_RESERVED - 1
inline constexpr std::size_t kMaxJobBytes = 256;

struct OfferRecord {
  std::uint32_t peer = 0;
  std::vector<std::uint32_t> ring_refs;
  std::uint32_t live_ref = 0;
  std::uint32_t data_port = 0, space_port = 0;
  std::string job; // may be empty
};

// "/local/domain/<offerer>/data/ivmc/<mapper>/<name>"
std::string offer_path(std::uint32_t offerer, std::uint32_t mapper, std::string_view name);

// A channel name: 1-32 characters of [a-z0-9_-] (it becomes a XenStore path component).
bool valid_channel_name(std::string_view name);

// Strict decimal: 1-10 digits, no sign, no spaces, no leading zeros (except "0"), <= max.
bool parse_decimal(std::string_view text, std::uint32_t max, std::uint32_t& out);

// The record's keys and values, "state" last (the order to write them in).
std::vector<std::pair<std::string, std::string>> offer_entries(const OfferRecord& record);

struct ParsedOffer {
  std::optional<OfferRecord> record;
  std::string error;      // the first problem, naming the key and the value; empty when valid
  bool not_ready = false; // 'state' is not "offered" yet: worth reading again later
};

// Reads the record through `read` (key -> value, nullopt if absent) and validates it for
// `self`, the domain about to map it.
ParsedOffer parse_offer(const std::function<std::optional<std::string>(std::string_view key)>& read,
                        std::uint32_t self);

} // namespace ivmc::xen
