// The host backend's pieces that need no process: the board, the control messages, the
// message check, and what the backend refuses or plans for a scenario.
#include "../../backends/host/src/traffic.hpp"
#include "ivmc/experiment/load.hpp"
#include "ivmc/experiment/overrides.hpp"
#include "ivmc/host/board.hpp"
#include "ivmc/host/control.hpp"
#include "ivmc/host/host_backend.hpp"

#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <vector>

using namespace ivmc;
using namespace ivmc::host;

TEST_CASE("the board carries views, the truth and race flags to a read-only mapping",
          "[host][board]") {
  Board b = Board::create(70); // more than one 64-bit word of view bits
  Board r = Board::open_read_only(b.fd());
  CHECK(r.vms() == 70);
  CHECK_FALSE(r.believes(1, 2));
  CHECK_FALSE(r.host_of(1).has_value());
  b.set_view(1, {2, 65, 70}, 7);
  std::uint64_t version = 0;
  CHECK(r.believes(1, 2, &version));
  CHECK(version == 7);
  CHECK(r.believes(1, 65));
  CHECK(r.believes(1, 70));
  CHECK_FALSE(r.believes(1, 3));
  CHECK_FALSE(r.believes(2, 1)); // views are per observer
  CHECK(r.view_version(1) == 7);
  b.set_view(1, {3}, 8);
  CHECK_FALSE(r.believes(1, 2));
  CHECK(r.believes(1, 3));
  // Out-of-range ids are never believed, never crash.
  CHECK_FALSE(r.believes(0, 1));
  CHECK_FALSE(r.believes(1, 71));
  CHECK_FALSE(r.believes(9999, 1));
  b.set_host(1, 0);
  b.set_host(2, 1);
  CHECK(r.host_of(1) == HostId{0});
  CHECK_FALSE(r.co_resident(1, 2));
  b.set_host(2, 0);
  CHECK(r.co_resident(1, 2));
  b.set_host(2, std::nullopt);
  CHECK_FALSE(r.co_resident(1, 2));
  b.set_race(1, 2, ChangeKind::migration_out);
  CHECK(r.race(1, 2) == ChangeKind::migration_out);
  CHECK_FALSE(r.race(2, 1).has_value());
  b.set_race(1, 2, std::nullopt);
  CHECK_FALSE(r.race(1, 2).has_value());
  // The reader's mapping cannot write.
  CHECK_THROWS(r.set_host(1, 1));
}

TEST_CASE("a board fd that is not a board is refused", "[host][board]") {
  const int fd = ::memfd_create("not-a-board", MFD_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, 8192) == 0);
  CHECK_THROWS_WITH(Board::open_read_only(fd), Catch::Contains("not a board"));
  ::close(fd);
  CHECK_THROWS(Board::create(0));
  CHECK_THROWS(Board::create(Board::kMaxVms + 1));
}

TEST_CASE("control messages round-trip and hostile packets are refused", "[host][control]") {
  Message m("report");
  m.set("pipe", std::uint64_t{3}).set("delta", std::int64_t{-5}).set("ratio", 0.25);
  m.set("name", std::string("a-b"));
  const Message back = Message::parse(m.encode());
  CHECK(back.verb() == "report");
  CHECK(back.u64("pipe") == 3);
  CHECK(back.i64("delta") == -5);
  CHECK(back.real("ratio") == 0.25);
  CHECK(back.text("name") == "a-b");
  CHECK_THROWS_AS(back.u64("missing"), ControlError);
  CHECK_THROWS_AS(back.u64("delta"), ControlError); // negative is not a u64
  CHECK_THROWS_AS(back.u64("name"), ControlError);
  CHECK_THROWS_AS(Message::parse(""), ControlError);
  CHECK_THROWS_AS(Message::parse("verb novalue"), ControlError);
  CHECK_THROWS_AS(Message::parse("verb =x"), ControlError);
  CHECK_THROWS_AS(Message::parse("verb a=1 a=2"), ControlError);
  CHECK_THROWS_AS(Message::parse("verb a=\x01"), ControlError);
  CHECK_THROWS_AS(Message::parse("verb a=1e999").real("a"), ControlError);
  CHECK_THROWS_AS(Message::parse("verb a=nan").real("a"), ControlError);
  CHECK_THROWS_AS(Message::parse("verb a=99999999999999999999999").u64("a"), ControlError);
  CHECK_THROWS_AS(m.set("bad key", std::string("x")), ControlError);
  CHECK_THROWS_AS(m.set("k", std::string("a b")), ControlError);
}

TEST_CASE("every byte of a message is checked: header, length, pipe and pattern",
          "[host][traffic]") {
  for (std::uint32_t bytes : {24u, 25u, 64u, 1000u, 4096u}) {
    std::vector<std::byte> buf(bytes);
    fill_message(buf, {41, 123456789, 7, bytes});
    MessageHeader h;
    REQUIRE(check_message(buf, 7, h));
    CHECK(h.index == 41);
    CHECK(h.created == 123456789);
    CHECK(h.bytes == bytes);
    CHECK_FALSE(check_message(buf, 8, h));                             // another pipe's
    CHECK_FALSE(check_message(std::span(buf).first(bytes - 1), 7, h)); // cut short
    for (std::size_t at = 0; at < bytes; at += std::max<std::size_t>(1, bytes / 13)) {
      std::vector<std::byte> bad = buf;
      bad[at] ^= std::byte{0x20};
      INFO("byte " << at << " of " << bytes);
      CHECK_FALSE(check_message(bad, 7, h));
    }
  }
  // Messages of different indexes differ.
  std::vector<std::byte> a(64), b(64);
  fill_message(a, {1, 0, 0, 64});
  fill_message(b, {2, 0, 0, 64});
  CHECK(std::memcmp(a.data() + kMessageHeader, b.data() + kMessageHeader, 40) != 0);
}

namespace {
experiment::Scenario two_vms() {
  return experiment::parse_scenario(R"(
name = "t"
duration_s = 5.0
[platform]
hosts = 3
[[vm]]
name = "a"
host = 0
[[vm]]
name = "b"
host = 0
[[workload]]
kind = "tcp_stream"
from = "a"
to = "b"
message_bytes = 64
[[generator]]
kind = "migrate"
rate_per_s = 4
vms = ["a"]
)",
                                    "t.toml");
}
} // namespace

TEST_CASE("the host backend refuses what it cannot play, naming the key and line",
          "[host][check]") {
  experiment::Scenario s = two_vms();
  CHECK(HostBackend(false).check(s).empty());
  experiment::apply_override(s, "workload[0].message_bytes=16");
  experiment::apply_override(s, "membership.detection=group");
  experiment::apply_override(s, "channel.ring_kib=262144");
  const auto issues = HostBackend(false).check(s);
  REQUIRE(issues.size() == 3);
  std::string all;
  for (const auto& i : issues) all += i.where + ": " + i.what + "\n";
  CHECK_THAT(all, Catch::Contains("t.toml:12: workload[0].message_bytes: 16 B"));
  CHECK_THAT(all, Catch::Contains("membership.detection"));
  CHECK_THAT(all,
             Catch::Contains("channel.ring_kib: 262144 KiB rings for 1 pipes need over 1 GiB"));
  // A pool sizes the slots by its largest share instead.
  experiment::Scenario p = two_vms();
  experiment::apply_override(p, "pool.enabled=true");
  experiment::apply_override(p, "pool.pool_mib=16");
  experiment::apply_override(p, "pool.max_pairs=8");
  experiment::apply_override(p, "pool.allocation=static_equal");
  CHECK(HostBackend(false).check(p).empty());
  CHECK(largest_ring(p) == 2u << 20);
  experiment::apply_override(p, "pool.allocation=proportional");
  CHECK(largest_ring(p) == 16u << 20);
}

TEST_CASE("a plan draws the generators from its seed: same seed, same migrations", "[host][plan]") {
  const experiment::Scenario s = two_vms();
  const Plan p1 = plan_from(s, 7, false), p2 = plan_from(s, 7, false), p3 = plan_from(s, 8, false);
  REQUIRE(p1.events.size() == p2.events.size());
  for (std::size_t i = 0; i < p1.events.size(); ++i) {
    CHECK(p1.events[i].at_s == p2.events[i].at_s);
    CHECK(p1.events[i].other == p2.events[i].other);
  }
  // About rate x duration = 20 draws; another seed gives other times.
  CHECK(p1.events.size() > 5);
  CHECK(p1.events.size() < 50);
  CHECK(p1.events[0].at_s != p3.events[0].at_s);
  for (const EventPlan& e : p1.events) {
    CHECK(e.vm == 1);
    CHECK(e.kind == EventPlan::Kind::migrate);
    CHECK_FALSE(e.host.has_value()); // another host, resolved when it happens
    CHECK(e.other < 2);
    CHECK(e.at_s < 5.0);
  }
  CHECK(p1.works.size() == 1);
  CHECK(p1.works[0].local_allowed);
  CHECK(p1.channel.ring_bytes == 256 * 1024);
}
