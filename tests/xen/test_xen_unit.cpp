// Unit tests of the Xen backend that run anywhere: the XenStore record's validation (it is
// written by another domain: hostile input) and, on a machine without Xen, that opening the
// platform fails with an error naming the interface.
#include "ivmc/xen/error.hpp"
#include "ivmc/xen/event_channel_doorbell.hpp"
#include "ivmc/xen/follow_view.hpp"
#include "ivmc/xen/offer_record.hpp"
#include "ivmc/xen/xen_platform.hpp"
#include "ivmc/xen/xenstore_membership.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <string>

using namespace ivmc::xen;

namespace {

OfferRecord sample() {
  OfferRecord r;
  r.peer = 3;
  r.ring_refs = {8, 9, 10, 4000000000u};
  r.live_ref = 11;
  r.data_port = 5;
  r.space_port = 6;
  r.job = "stream policy=polling bytes=1048576";
  return r;
}

using Store = std::map<std::string, std::string>;

Store entries_of(const OfferRecord& r) {
  Store s;
  for (const auto& [k, v] : offer_entries(r)) s[k] = v;
  return s;
}

ParsedOffer parse(const Store& s, std::uint32_t self = 3) {
  return parse_offer(
      [&](std::string_view key) -> std::optional<std::string> {
        const auto it = s.find(std::string(key));
        if (it == s.end()) return std::nullopt;
        return it->second;
      },
      self);
}

// The record with one key changed (or removed, when `value` is null).
ParsedOffer with(const std::string& key, const char* value) {
  Store s = entries_of(sample());
  if (value == nullptr)
    s.erase(key);
  else
    s[key] = value;
  return parse(s);
}

} // namespace

TEST_CASE("xen record: a record written by offer_entries parses back", "[xen]") {
  const Store s = entries_of(sample());
  CHECK(s.at("state") == "offered");
  CHECK(s.at("ring-refs") == "8,9,10,4000000000");
  CHECK(offer_entries(sample()).back().first == "state"); // written last
  const ParsedOffer p = parse(s);
  INFO(p.error);
  REQUIRE(p.record);
  CHECK(p.record->ring_refs == sample().ring_refs);
  CHECK(p.record->live_ref == 11);
  CHECK(p.record->data_port == 5);
  CHECK(p.record->space_port == 6);
  CHECK(p.record->job == sample().job);
  CHECK(offer_path(0, 3, "j0") == "/local/domain/0/data/ivmc/3/j0");
}

TEST_CASE("xen record: not offered yet is not an error, only not ready", "[xen]") {
  const ParsedOffer missing = with("state", nullptr);
  CHECK_FALSE(missing.record);
  CHECK(missing.not_ready);
  const ParsedOffer other = with("state", "closing");
  CHECK_FALSE(other.record);
  CHECK(other.not_ready);
  CHECK(other.error.find("'state'") != std::string::npos);
}

TEST_CASE("xen record: hostile values are rejected, naming the key", "[xen]") {
  struct Case {
    const char* key;
    const char* value; // null: the key is missing
    const char* expect;
  };
  const Case cases[] = {
      {"version", "2", "version 2"},
      {"version", nullptr, "'version' is missing"},
      {"peer", "4", "offered to domain 4"},
      {"peer", "-3", "'peer'"},
      {"pages", "0", "'pages'"},
      {"pages", "99999", "'pages'"},
      {"pages", "3", "lists 4 references for 3 pages"},
      {"pages", "04", "'pages'"},
      {"pages", " 4", "'pages'"},
      {"pages", "4 ", "'pages'"},
      {"pages", "+4", "'pages'"},
      {"live-ref", "7", "'live-ref'"},
      {"live-ref", "99999999999", "'live-ref'"},
      {"live-ref", "9", "appears twice"},
      {"data-port", "0", "'data-port'"},
      {"data-port", "131072", "'data-port'"},
      {"data-port", "6", "both 6"},
      {"space-port", "0x10", "'space-port'"},
      {"ring-refs", nullptr, "'ring-refs' is missing"},
      {"ring-refs", "8,9,10,", "ring-refs"},
      {"ring-refs", "8,9,,10", "item 2"},
      {"ring-refs", "8,9,10,3", "item 3"},
      {"ring-refs", "8,9,9,12", "appears twice"},
      {"ring-refs", "8,9,10,4294967296", "item 3"},
      {"ring-refs", "8;9;10;12", "item 0"},
      {"ring-refs", "8,9,10,12,13", "lists 5 references for 4 pages"},
      {"ring-refs", "88888888888888888888888888888888888888888888888888", "too long"},
      {"job", "stream; rm -rf /", "'job'"},
      {"job", "stream\nexit", "'job'"},
  };
  for (const Case& c : cases) {
    INFO(c.key << " = " << (c.value ? c.value : "(missing)"));
    const ParsedOffer p = with(c.key, c.value);
    CHECK_FALSE(p.record);
    CHECK_FALSE(p.not_ready);
    INFO("error: " << p.error);
    CHECK(p.error.find(c.expect) != std::string::npos);
  }
  Store long_job = entries_of(sample());
  long_job["job"] = std::string(kMaxJobBytes + 1, 'a');
  CHECK(parse(long_job).error.find("'job'") != std::string::npos);
  Store unprintable = entries_of(sample());
  unprintable["pages"] = std::string("4\0", 2);
  CHECK(parse(unprintable).error.find("'4?'") != std::string::npos); // shown escaped
}

TEST_CASE("xen record: strict decimals and channel names", "[xen]") {
  std::uint32_t v = 0;
  CHECK(parse_decimal("0", 10, v));
  CHECK(v == 0);
  CHECK(parse_decimal("4294967295", UINT32_MAX, v));
  CHECK(v == 4294967295u);
  CHECK_FALSE(parse_decimal("4294967296", UINT32_MAX, v));
  CHECK_FALSE(parse_decimal("", 10, v));
  CHECK_FALSE(parse_decimal("00", 10, v));
  CHECK_FALSE(parse_decimal("11", 10, v));
  CHECK_FALSE(parse_decimal("1e3", 10000, v));
  CHECK(valid_channel_name("j0"));
  CHECK(valid_channel_name("stream_1-a"));
  CHECK_FALSE(valid_channel_name(""));
  CHECK_FALSE(valid_channel_name("../x"));
  CHECK_FALSE(valid_channel_name("a/b"));
  CHECK_FALSE(valid_channel_name("Upper"));
  CHECK_FALSE(valid_channel_name(std::string(33, 'a')));
}

TEST_CASE("xen platform: without Xen, opening fails and says what and why", "[xen]") {
  if (std::filesystem::exists("/dev/xen/evtchn") ||
      std::filesystem::exists("/proc/xen/capabilities")) {
    SUCCEED("this machine is a Xen domain: the vm tests exercise the platform");
    return;
  }
  try {
    XenPlatform::open();
    FAIL("XenPlatform::open() succeeded on a machine without Xen");
  } catch (const XenError& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK(what.find("xs_open") != std::string::npos);
    CHECK(what.find("Xen domain") != std::string::npos);
  }
  try {
    EventChannelDoorbell::offer(1);
    FAIL("binding an event channel succeeded on a machine without Xen");
  } catch (const XenError& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK(what.find("xenevtchn_open") != std::string::npos);
    CHECK(what.find("No such file or directory") != std::string::npos);
  }
}

TEST_CASE("xen membership: only a domain's own directory is a membership event", "[xen]") {
  CHECK(names_domain_directory("/local/domain/0"));
  CHECK(names_domain_directory("/local/domain/32751"));
  CHECK_FALSE(names_domain_directory("/local/domain/32752")); // a reserved id
  CHECK_FALSE(names_domain_directory("/local/domain"));
  CHECK_FALSE(names_domain_directory("/local/domain/"));
  CHECK_FALSE(names_domain_directory("/local/domain/3/data/ivmc-progress"));
  CHECK_FALSE(names_domain_directory("/local/domain/03"));
  CHECK_FALSE(names_domain_directory("/local/domain/x"));
  CHECK_FALSE(names_domain_directory("/local/domainx/3"));
  CHECK_FALSE(names_domain_directory("@releaseDomain"));
}

TEST_CASE("xen membership: without Xen, the source fails naming XenStore", "[xen]") {
  if (std::filesystem::exists("/dev/xen/xenbus") ||
      std::filesystem::exists("/proc/xen/capabilities")) {
    SUCCEED("this machine is a Xen domain: the vm tests exercise the source");
    return;
  }
  for (const auto mode : {XenStoreMembership::Mode::scan, XenStoreMembership::Mode::watch}) {
    try {
      XenStoreMembership m(mode, 500'000'000);
      FAIL("a XenStore membership source opened on a machine without Xen");
    } catch (const XenError& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find("xs_open") != std::string::npos);
    }
  }
}

TEST_CASE("a domU's view from dom0 is parsed as hostile input", "[xen][view]") {
  const auto v = parse_follow_view("7 b:2 relay-1:31");
  REQUIRE(v);
  CHECK(v->version == 7);
  CHECK(v->peers.size() == 2);
  CHECK(v->peers.at("b") == 2);
  CHECK(v->peers.at("relay-1") == 31);
  CHECK(parse_follow_view("3")->peers.empty()); // a view with no co-resident peer
  for (const char* bad :
       {"", " ", "x b:2", "-1 b:2", "99999999999 b:2", "1 b", "1 :2", "1 b:", "1 b:0", "1 b:32752",
        "1 B:2", "1 b:2 b:3", "1 b:2x", "1 b:+2", "1 b\x01:2",
        "1 a:1 b:2 c:3 d:4 e:5 f:6 g:7 h:8 i:9", "1 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:2"})
    CHECK_FALSE(parse_follow_view(bad));
}
