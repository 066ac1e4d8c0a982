// Co-residency on a virtual clock: the topology (ground truth), every membership source's views
// and notification records, the race windows of Table IV, and the trust list.
#include "ivmc/core/membership_sources.hpp"
#include "ivmc/core/topology.hpp"
#include "ivmc/core/trust.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

using namespace ivmc;

namespace {

constexpr Nanos us = 1'000;
constexpr Nanos ms = 1'000'000;
constexpr Nanos sec = 1'000'000'000;

VmAddress address(VmId vm) {
  return VmAddress{vm, "10.0." + std::to_string(vm / 256) + "." + std::to_string(vm % 256),
                   "52:54:00:00:" + std::to_string(vm / 256) + ":" + std::to_string(vm % 256)};
}

// hosts 1, 2, 3; VMs 10, 11 on host 1, 20 on host 2; host 3 empty.
Topology small_world() {
  Topology t;
  for (HostId h : {1u, 2u, 3u}) t.add_host(h);
  t.create_vm(10, address(10), 1, 0);
  t.create_vm(11, address(11), 1, 0);
  t.create_vm(20, address(20), 2, 0);
  return t;
}

// Runs everything due before `t` (events at t are reported before run_due(t)). A source whose
// next_due() does not move on fails here instead of hanging.
void run_before(MembershipSource& src, Nanos t) {
  for (int guard = 0; src.next_due() < t; ++guard) {
    if (guard == 10'000'000) FAIL("next_due() does not move on");
    src.run_due(src.next_due());
  }
}
// Runs everything due up to and including `t`.
void run_until(MembershipSource& src, Nanos t) {
  run_before(src, t == kNever ? t : t + 1);
}

std::vector<const NotificationRecord*> records_of(const MembershipSource& src,
                                                  std::uint64_t change) {
  std::vector<const NotificationRecord*> out;
  for (const auto& r : src.records())
    if (r.change == change) out.push_back(&r);
  return out;
}

using RecordKey = std::tuple<std::uint64_t, ChangeKind, VmId, VmId, Nanos>;
std::multiset<RecordKey> keys(const std::vector<NotificationRecord>& records) {
  std::multiset<RecordKey> out;
  for (const auto& r : records) out.emplace(r.change, r.kind, r.subject, r.observer, r.t_event);
  return out;
}

std::vector<VmId> truth_view(const Topology& t, VmId vm) {
  auto v = t.vms_on(t.host_of(vm));
  v.erase(std::remove(v.begin(), v.end(), vm), v.end());
  return v;
}

// The race-window rule, by brute force over all records.
std::optional<ChangeKind> race_oracle(const std::vector<NotificationRecord>& records, VmId observer,
                                      VmId subject, Nanos now) {
  if (observer == subject) return std::nullopt;
  std::optional<std::pair<std::uint64_t, ChangeKind>> best;
  auto open = [&](const NotificationRecord& r) { return r.t_event <= now && now < r.t_notified; };
  for (const auto& r : records) {
    if (r.observer != observer || !open(r)) continue;
    std::optional<ChangeKind> kind;
    if (r.subject == subject) kind = r.kind;
    if (r.subject == observer)
      for (const auto& s : records)
        if (s.change == r.change && s.observer == subject && s.kind == r.kind) kind = r.kind;
    if (kind && (!best || r.change >= best->first)) best = std::pair{r.change, *kind};
  }
  if (!best) return std::nullopt;
  return best->second;
}

template <class F>
void require_topology_error(F&& f, TopologyError::Code code, std::uint32_t id,
                            const std::string& text) {
  try {
    f();
    FAIL("expected a TopologyError containing: " << text);
  } catch (const TopologyError& e) {
    CHECK(e.code() == code);
    CHECK(e.id() == id);
    CHECK_THAT(e.what(), Catch::Contains(text));
  }
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Topology

TEST_CASE("topology: create, migrate, shutdown and the queries", "[topology]") {
  Topology t;
  t.add_host(1);
  t.add_host(2);
  auto c = t.create_vm(10, address(10), 1, 5);
  CHECK(c.kind == TopologyEvent::Kind::create);
  CHECK(c.vm == 10);
  CHECK(c.to == 1);
  CHECK(c.time == 5);
  t.create_vm(11, address(11), 1, 6);
  t.create_vm(20, address(20), 2, 7);

  CHECK(t.host_count() == 2);
  CHECK(t.hosts() == std::vector<HostId>{1, 2});
  CHECK(t.vm_count() == 3);
  CHECK(t.host_of(11) == 1);
  CHECK(t.co_resident(10, 11));
  CHECK_FALSE(t.co_resident(10, 20));
  CHECK(t.vms_on(1) == std::vector<VmId>{10, 11});
  CHECK(t.vm_count(1) == 2);
  CHECK(t.address_of(20).ip == address(20).ip);
  CHECK(t.vm_with_mac(address(11).mac) == std::optional<VmId>(11));
  CHECK(t.vm_with_ip(address(20).ip) == std::optional<VmId>(20));
  CHECK_FALSE(t.vm_with_ip("192.0.2.1").has_value());

  auto m = t.migrate_vm(11, 2, 10);
  CHECK(m.kind == TopologyEvent::Kind::migrate);
  CHECK(m.from == 1);
  CHECK(m.to == 2);
  CHECK(m.time == 10);
  CHECK(t.vms_on(1) == std::vector<VmId>{10});
  CHECK(t.vms_on(2) == std::vector<VmId>{11, 20});
  CHECK(t.co_resident(11, 20));
  CHECK_FALSE(t.co_resident(11, 10));

  auto s = t.shutdown_vm(20, 12);
  CHECK(s.kind == TopologyEvent::Kind::shutdown);
  CHECK(s.from == 2);
  CHECK_FALSE(t.has_vm(20));
  CHECK(t.vms_on(2) == std::vector<VmId>{11});
  CHECK_FALSE(t.vm_with_ip(address(20).ip).has_value());
  CHECK(t.last_event_time() == 12);
  // An id (and its address) may live again after a shutdown.
  t.create_vm(20, address(20), 1, 13);
  CHECK(t.vms_on(1) == std::vector<VmId>{10, 20});
}

TEST_CASE("topology: channels", "[topology]") {
  Topology t = small_world();
  t.add_channel(10, 11);
  t.add_channel(20, 10); // a channel may span hosts (the remote path)
  CHECK(t.channel_count() == 2);
  CHECK(t.has_channel(11, 10));
  CHECK(t.channels_of(10) == std::vector<VmId>{11, 20});
  CHECK(t.channels_of(20) == std::vector<VmId>{10});

  t.migrate_vm(11, 3, 1); // channels follow the VM
  CHECK(t.has_channel(10, 11));
  t.remove_channel(11, 10);
  CHECK_FALSE(t.has_channel(10, 11));
  CHECK(t.channel_count() == 1);

  t.add_channel(11, 20);
  t.shutdown_vm(20, 2); // its channels go with it
  CHECK(t.channel_count() == 0);
  CHECK(t.channels_of(10).empty());
  CHECK(t.channels_of(11).empty());
}

TEST_CASE("topology: small and large VM ids answer alike (flat array and map)", "[topology]") {
  // Ids below 2^20 are answered from a flat array, larger ones from the map: both must follow
  // every create, migrate and shutdown, and an unknown id of either kind is an error.
  using C = TopologyError::Code;
  Topology t;
  t.add_host(0);
  t.add_host(7);
  const std::vector<VmId> ids = {1, (1u << 20) - 1, 1u << 20, 0xFFFFFFFFu};
  Nanos now = 1;
  for (VmId id : ids) t.create_vm(id, address(id % 1000 + 100), 0, now++);
  for (VmId id : ids) {
    CHECK(t.has_vm(id));
    CHECK(t.host_of(id) == 0);
  }
  CHECK(t.co_resident(1, 0xFFFFFFFFu));
  t.migrate_vm(1u << 20, 7, now++);
  t.migrate_vm((1u << 20) - 1, 7, now++);
  CHECK(t.host_of(1u << 20) == 7);
  CHECK(t.host_of((1u << 20) - 1) == 7);
  CHECK(t.co_resident(1u << 20, (1u << 20) - 1));
  CHECK_FALSE(t.co_resident(1, 1u << 20));
  CHECK_FALSE(t.co_resident(0xFFFFFFFFu, (1u << 20) - 1));
  t.shutdown_vm(0xFFFFFFFFu, now++);
  t.shutdown_vm(1, now++);
  CHECK_FALSE(t.has_vm(0xFFFFFFFFu));
  CHECK_FALSE(t.has_vm(1));
  CHECK_FALSE(t.has_vm(2));
  CHECK_FALSE(t.has_vm((1u << 20) + 1));
  require_topology_error([&] { t.host_of(1); }, C::unknown_vm, 1, "host_of: unknown VM 1");
  require_topology_error([&] { t.host_of(0xFFFFFFFFu); }, C::unknown_vm, 0xFFFFFFFFu,
                         "host_of: unknown VM 4294967295");
  require_topology_error([&] { t.co_resident(1u << 20, 5); }, C::unknown_vm, 5,
                         "co_resident: unknown VM 5");
  // A failed migration leaves the VM where it was.
  require_topology_error([&] { t.migrate_vm(1u << 20, 7, now); }, C::same_host, 1u << 20,
                         "is already on host 7");
  CHECK(t.host_of(1u << 20) == 7);
  CHECK(t.vm_count() == 2);
}

TEST_CASE("topology: errors say what and which id", "[topology]") {
  using C = TopologyError::Code;
  Topology t = small_world();
  require_topology_error([&] { t.migrate_vm(99, 2, 1); }, C::unknown_vm, 99,
                         "migrate_vm: unknown VM 99");
  require_topology_error([&] { t.migrate_vm(10, 7, 1); }, C::unknown_host, 7,
                         "migrate_vm: unknown host 7");
  require_topology_error([&] { t.create_vm(12, address(12), 7, 1); }, C::unknown_host, 7,
                         "create_vm: unknown host 7");
  require_topology_error([&] { t.create_vm(10, address(99), 2, 1); }, C::vm_exists, 10,
                         "create_vm: VM 10 already exists (on host 1)");
  require_topology_error([&] { t.migrate_vm(10, 1, 1); }, C::same_host, 10,
                         "migrate_vm: VM 10 is already on host 1");
  require_topology_error([&] { t.add_host(2); }, C::host_exists, 2,
                         "add_host: host 2 already exists");
  require_topology_error([&] { t.create_vm(12, address(10), 2, 1); }, C::address_in_use, 12,
                         "is already used by VM 10");
  require_topology_error([&] { t.shutdown_vm(98, 1); }, C::unknown_vm, 98,
                         "shutdown_vm: unknown VM 98");
  require_topology_error([&] { t.host_of(97); }, C::unknown_vm, 97, "host_of: unknown VM 97");
  require_topology_error([&] { t.vms_on(9); }, C::unknown_host, 9, "vms_on: unknown host 9");
  require_topology_error([&] { t.add_channel(10, 10); }, C::self_channel, 10,
                         "VM 10 cannot have a channel to itself");
  t.add_channel(10, 11);
  require_topology_error([&] { t.add_channel(11, 10); }, C::channel_exists, 11,
                         "already have a channel");
  require_topology_error([&] { t.remove_channel(10, 20); }, C::unknown_channel, 10,
                         "VM 10 and VM 20 have no channel");
  t.migrate_vm(10, 2, 50);
  require_topology_error([&] { t.migrate_vm(11, 3, 49); }, C::time_went_back, 11,
                         "is before the previous event at t=50");
  // Nothing above changed the topology.
  CHECK(t.vm_count() == 3);
  CHECK(t.host_of(11) == 1);
}

TEST_CASE("topology and sources at scale: 1,000 hosts x 10 VMs, 10,000 migrations",
          "[topology][scale]") {
  constexpr HostId kHosts = 1000;
  constexpr VmId kVms = 10'000;
  Topology t;
  for (HostId h = 0; h < kHosts; ++h) t.add_host(h);
  for (VmId v = 0; v < kVms; ++v) t.create_vm(v, address(v), v % kHosts, 0);
  REQUIRE(t.vm_count() == kVms);
  for (HostId h = 0; h < kHosts; ++h) REQUIRE(t.vm_count(h) == 10);

  EventWatchSource watch(t, 50 * us);
  PeriodicScanSource periodic(t, 10 * ms);
  RaceWindows windows(periodic);
  std::uint64_t x = 88172645463325252ull; // xorshift: deterministic everywhere
  auto next = [&] {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return x;
  };
  std::uint64_t in_window = 0;
  for (int i = 1; i <= 10'000; ++i) {
    Nanos now = i * 100 * us;
    run_before(watch, now);
    run_before(periodic, now);
    auto vm = static_cast<VmId>(next() % kVms);
    auto to = static_cast<HostId>(next() % (kHosts - 1));
    if (to >= t.host_of(vm)) ++to; // never the host it is on
    auto e = t.migrate_vm(vm, to, now);
    watch.on_event(e);
    periodic.on_event(e);
    // The link asks for every operation; here, about a co-resident peer of the migrated VM.
    auto peers = t.vms_on(to);
    if (windows.in_race_window(peers.front() == vm ? peers.back() : peers.front(), vm, now))
      ++in_window;
  }
  Nanos end = 10'000 * 100 * us + 20 * ms;
  run_until(watch, end);
  run_until(periodic, end);

  std::size_t total = 0;
  for (HostId h = 0; h < kHosts; ++h) total += t.vm_count(h);
  CHECK(total == kVms);
  // Both sources saw the same changes and observers; once settled, every view is the truth.
  CHECK(keys(watch.records()) == keys(periodic.records()));
  CHECK(watch.changes() == 10'000);
  bool views_true = true;
  for (VmId v = 0; v < kVms; ++v) {
    auto truth = truth_view(t, v);
    views_true = views_true && watch.view_of(v) == truth && periodic.view_of(v) == truth;
  }
  CHECK(views_true);
  auto w = summarise(watch.records());
  CHECK(w.all.notified == w.all.records);
  CHECK(w.all.max == 50 * us);
  auto p = summarise(periodic.records());
  CHECK(p.all.notified == p.all.records);
  CHECK(p.all.max <= 10 * ms);
  CHECK(p.all.max > 9 * ms);
  // Each migration lands 100 us into some 10 ms scan period: its arrival peers are in a window.
  CHECK(in_window > 9'000);
  // Probes: every host scanned on a 10 ms grid (0 .. 1.02 s), 10 VMs each.
  CHECK(periodic.scans() == kHosts * 103);
  CHECK(periodic.probes() == 10 * periodic.scans());
}

TEST_CASE("race windows asked in time order forget closed changes and answer the same",
          "[race][scale]") {
  // 20 hosts x 5 VMs; a migration every 1 ms against a 10 ms scan: about ten changes' windows
  // are open at any time, overlapping, and a migrated VM is often asked about before its own
  // change is notified (the own-change case, which needs the other observers' records).
  constexpr HostId kHosts = 20;
  constexpr VmId kVms = 100;
  Topology t;
  for (HostId h = 0; h < kHosts; ++h) t.add_host(h);
  for (VmId v = 0; v < kVms; ++v) t.create_vm(v, address(v), v % kHosts, 0);
  PeriodicScanSource periodic(t, 10 * ms);
  RaceWindows all(periodic);
  RaceWindows forgetting(periodic, RaceWindows::Queries::in_time_order);
  std::uint64_t x = 88172645463325252ull; // xorshift: deterministic everywhere
  auto next = [&] {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return x;
  };
  std::uint64_t asked = 0, open = 0, same = 0, own = 0;
  std::size_t most_remembered = 0;
  constexpr int kMigrations = 5'000;
  for (int i = 1; i <= kMigrations; ++i) {
    const Nanos now = i * ms;
    run_before(periodic, now);
    const auto vm = static_cast<VmId>(next() % kVms);
    const HostId from = t.host_of(vm);
    auto to = static_cast<HostId>(next() % (kHosts - 1));
    if (to >= from) ++to;
    periodic.on_event(t.migrate_vm(vm, to, now));
    // Ask about every pair on both hosts, both ways, and at a few later instants of this step.
    std::vector<VmId> involved = t.vms_on(from);
    for (VmId v : t.vms_on(to)) involved.push_back(v);
    for (Nanos later : {Nanos{0}, 300 * us, 700 * us}) {
      for (VmId a : involved) {
        for (VmId b : involved) {
          const auto w1 = all.open_window(a, b, now + later);
          const auto w2 = forgetting.open_window(a, b, now + later);
          ++asked;
          open += w1.has_value();
          own += w1.has_value() && a == vm && b != vm;
          same += w1.has_value() == w2.has_value() &&
                  (!w1 || (w1->change == w2->change && w1->kind == w2->kind));
        }
      }
    }
    most_remembered = std::max(most_remembered, forgetting.remembered());
  }
  CHECK(same == asked);     // every answer identical
  CHECK(open > asked / 20); // and many of them were open windows
  CHECK(own > 1'000);       // including the migrated VM's own changes
  // The forgetting index holds only the last scan period's changes (about 10 x 16 records),
  // not the run's 55,000.
  CHECK(all.remembered() == periodic.records().size());
  CHECK(periodic.records().size() > 50'000);
  CHECK(most_remembered < 2'000);
}

TEST_CASE("retired records leave the source and change nothing it or its race windows answer",
          "[race][scale]") {
  // Two identical worlds fed the same 5,000 migrations. One source keeps every record; the
  // other retires, after each change, what its in-time-order race windows no longer need.
  // Views, versions, race windows and the records themselves (kept + retired, in order) must
  // be the same, and the retiring source must hold only the open changes' records.
  constexpr HostId kHosts = 20;
  constexpr VmId kVms = 100;
  Topology t1, t2;
  for (Topology* t : {&t1, &t2}) {
    for (HostId h = 0; h < kHosts; ++h) t->add_host(h);
    for (VmId v = 0; v < kVms; ++v) t->create_vm(v, address(v), v % kHosts, 0);
  }
  PeriodicScanSource keeping(t1, 10 * ms), retiring(t2, 10 * ms);
  RaceWindows all(keeping);
  RaceWindows forgetting(retiring, RaceWindows::Queries::in_time_order);
  std::vector<NotificationRecord> retired;
  std::uint64_t x = 88172645463325252ull; // xorshift: deterministic everywhere
  auto next = [&] {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return x;
  };
  std::uint64_t asked = 0, open = 0, same = 0, views_same = 0, views_asked = 0;
  std::size_t most_kept = 0;
  for (int i = 1; i <= 5'000; ++i) {
    const Nanos now = i * ms;
    run_before(keeping, now);
    run_before(retiring, now);
    const auto vm = static_cast<VmId>(next() % kVms);
    const HostId from = t1.host_of(vm);
    auto to = static_cast<HostId>(next() % (kHosts - 1));
    if (to >= from) ++to;
    keeping.on_event(t1.migrate_vm(vm, to, now));
    retiring.on_event(t2.migrate_vm(vm, to, now));
    std::vector<VmId> involved = t1.vms_on(from);
    for (VmId v : t1.vms_on(to)) involved.push_back(v);
    for (Nanos later : {Nanos{0}, 500 * us}) {
      for (VmId a : involved) {
        for (VmId b : involved) {
          const auto w1 = all.open_window(a, b, now + later);
          const auto w2 = forgetting.open_window(a, b, now + later);
          ++asked;
          open += w1.has_value();
          same += w1.has_value() == w2.has_value() &&
                  (!w1 || (w1->change == w2->change && w1->kind == w2->kind));
        }
      }
    }
    retiring.retire_records_before(forgetting.oldest_remembered(),
                                   [&](const NotificationRecord& r) { retired.push_back(r); });
    for (VmId v : involved) {
      ++views_asked;
      views_same += keeping.view_of(v) == retiring.view_of(v) &&
                    keeping.view_version(v) == retiring.view_version(v);
    }
    most_kept = std::max(most_kept, retiring.records().size());
  }
  CHECK(same == asked);
  CHECK(open > asked / 20);
  CHECK(views_same == views_asked);
  // Every record is either retired or kept, numbered as before, with the same content.
  const auto& every = keeping.records();
  REQUIRE(retiring.record_base() == retired.size());
  REQUIRE(retired.size() + retiring.records().size() == every.size());
  std::size_t equal = 0;
  for (std::size_t n = 0; n < every.size(); ++n) {
    const NotificationRecord& r =
        n < retired.size() ? retired[n] : retiring.records()[n - retired.size()];
    equal += r.change == every[n].change && r.kind == every[n].kind &&
             r.subject == every[n].subject && r.observer == every[n].observer &&
             r.t_event == every[n].t_event && r.t_notified == every[n].t_notified;
  }
  CHECK(equal == every.size());
  CHECK(every.size() > 50'000);
  CHECK(retired.size() > 49'000); // all but the last scan period's
  CHECK(most_kept < 2'000);       // about ten changes' records, not the run's
  // Nothing still pending leaves: a record retired is one its observer has learnt of.
  CHECK(std::all_of(retired.begin(), retired.end(),
                    [](const NotificationRecord& r) { return r.t_notified != kNever; }));
}

TEST_CASE("retiring stops at the first record still pending for any end it is given", "[race]") {
  Topology t;
  for (HostId h = 0; h < 2; ++h) t.add_host(h);
  for (VmId v = 0; v < 4; ++v) t.create_vm(v, address(v), v % 2, 0);
  PeriodicScanSource src(t, 10 * ms);
  std::size_t seen = 0;
  auto count = [&](const NotificationRecord&) { ++seen; };
  src.on_event(t.migrate_vm(0, 1, 1 * ms)); // records pending until the next scan (10 ms)
  const std::size_t made = src.records().size();
  REQUIRE(made > 2);
  CHECK(src.retire_records_before(std::numeric_limits<std::size_t>::max(), count) == 0);
  CHECK(seen == 0);
  CHECK(src.record_base() == 0);
  run_before(src, 11 * ms);                  // the scan: every observer learns of it
  src.on_event(t.migrate_vm(1, 0, 12 * ms)); // a second change, pending again
  CHECK(src.retire_records_before(std::numeric_limits<std::size_t>::max(), count) == made);
  CHECK(seen == made);
  CHECK(src.record_base() == made);
  // The kept records are the second change's, still pending, and the scan still notifies them.
  CHECK(std::all_of(src.records().begin(), src.records().end(),
                    [](const NotificationRecord& r) { return r.t_notified == kNever; }));
  run_before(src, 21 * ms);
  CHECK(std::all_of(src.records().begin(), src.records().end(),
                    [](const NotificationRecord& r) { return r.t_notified == 20 * ms; }));
  CHECK(src.view_of(0) == std::vector<VmId>{3}); // host 1: 3 and 0; host 0: 2 and 1
  CHECK(src.view_of(1) == std::vector<VmId>{2});
}

// ---------------------------------------------------------------------------------------------
// Static list (XWAY)

TEST_CASE("static list: views come from the list and are never updated", "[static]") {
  Topology t = small_world();
  auto src = StaticListSource::from_string("# XWAY co-residency list\n"
                                           "host 1: 10 11   # the web tier\n"
                                           "host 2 : 20\n"
                                           "\n"
                                           "host 3:\n",
                                           t);
  CHECK(src->name() == "static");
  CHECK(src->believes_co_resident(10, 11));
  CHECK(src->believes_co_resident(11, 10));
  CHECK_FALSE(src->believes_co_resident(10, 20));
  CHECK_FALSE(src->believes_co_resident(10, 10));
  CHECK(src->listed_host(20) == std::optional<HostId>(2));
  CHECK_FALSE(src->listed_host(99).has_value());

  src->on_event(t.migrate_vm(11, 2, 5 * ms));
  src->on_event(t.create_vm(21, address(21), 2, 6 * ms));
  CHECK(src->next_due() == kNever);
  src->run_due(1000 * sec);
  // Still the administrator's list: 11 is believed on host 1, 21 is unknown.
  CHECK(src->believes_co_resident(10, 11));
  CHECK_FALSE(src->believes_co_resident(20, 11));
  CHECK_FALSE(src->believes_co_resident(20, 21));
  CHECK(src->view_version(10) == 0);
  CHECK(src->probes() == 0);

  auto migration = records_of(*src, 0);
  REQUIRE(migration.size() == 4); // 10 (out), 20 (in), 11 itself (out, in)
  for (auto* r : migration) CHECK(r->t_notified == kNever);
  CHECK(src->records().size() == 4 + 3); // creation: 11 and 20 on host 2, and 21 itself

  RaceWindows windows(*src);
  CHECK(windows.in_race_window(10, 11, 1000 * sec) == ChangeKind::migration_out);
  CHECK(windows.in_race_window(20, 11, 1000 * sec) == ChangeKind::migration_in);
  CHECK(windows.in_race_window(11, 10, 1000 * sec) == ChangeKind::migration_out);
  CHECK(windows.in_race_window(11, 20, 1000 * sec) == ChangeKind::migration_in);
  CHECK(windows.in_race_window(20, 21, 1000 * sec) == ChangeKind::creation);
  CHECK_FALSE(windows.in_race_window(10, 11, 4 * ms).has_value());     // before the change
  CHECK_FALSE(windows.in_race_window(10, 21, 1000 * sec).has_value()); // 10 is not on host 2
}

TEST_CASE("static list: parse errors name the line and what was expected", "[static]") {
  Topology t = small_world();
  auto [text, line, expected] = GENERATE(table<std::string, std::size_t, std::string>({
      {"host 1: 10\nhots 2: 20\n", 2, "expected 'host <id>: <vm> ...', got 'hots'"},
      {"host x: 10", 1, "expected a host id after 'host', got 'x'"},
      {"host", 1, "expected a host id after 'host', got end of line"},
      {"host 99999999999: 1", 1, "expected a host id after 'host', got '99999999999'"},
      {"host 1 10 11", 1, "expected ':' after host 1, got '10'"},
      {"# ok\nhost 1", 2, "expected ':' after host 1, got end of line"},
      {"host 1: 10 1a", 1, "expected a VM id, got '1a'"},
      {"host 1: 10 :", 1, "expected a VM id, got ':'"},
      {"# c\n\nhost 1: 10\nhost 2: 20 10", 4, "VM 10 is already listed at line 3"},
      {"host 1: 10\r\nhost 1: 11\r\n", 2, "host 1 is already listed at line 1"},
  }));
  CAPTURE(text);
  try {
    StaticListSource::from_string(text, t, "xway.conf");
    FAIL("no parse error");
  } catch (const StaticListError& e) {
    CHECK(e.file() == "xway.conf");
    CHECK(e.line() == line);
    CHECK(std::string(e.what()) == "xway.conf:" + std::to_string(line) + ": " + expected);
  }
}

TEST_CASE("static list: from a file", "[static]") {
  Topology t = small_world();
  auto dir = std::filesystem::temp_directory_path();
  auto good = (dir / "ivmc_test_static_list_good.txt").string();
  auto bad = (dir / "ivmc_test_static_list_bad.txt").string();
  std::ofstream(good) << "host 1: 10 11\nhost 2: 20\n";
  std::ofstream(bad) << "host 1: 10 11\nhost 2 20\n";
  auto src = StaticListSource::from_file(good, t);
  CHECK(src->believes_co_resident(11, 10));
  try {
    StaticListSource::from_file(bad, t);
    FAIL("no parse error");
  } catch (const StaticListError& e) {
    CHECK(e.file() == bad);
    CHECK(e.line() == 2);
    CHECK_THAT(e.what(), Catch::StartsWith(bad + ":2: expected ':' after host 2"));
  }
  CHECK_THROWS_WITH(StaticListSource::from_file(good + ".missing", t),
                    Catch::Contains("cannot open"));
  std::filesystem::remove(good);
  std::filesystem::remove(bad);
}

// ---------------------------------------------------------------------------------------------
// Group registration (IVC)

TEST_CASE("group registration: one group from one host, a migrated VM must re-register",
          "[group]") {
  Topology t = small_world();
  t.create_vm(12, address(12), 1, 0);
  GroupRegistrationSource src(t);
  RaceWindows windows(src);
  CHECK_FALSE(src.believes_co_resident(10, 11)); // nobody registered yet

  src.register_vm(10, 7, 1 * ms);
  src.register_vm(11, 7, 2 * ms);
  src.register_vm(12, 8, 3 * ms);
  src.register_vm(20, 7, 4 * ms);
  CHECK(src.probes() == 4);
  CHECK(src.believes_co_resident(10, 11));
  CHECK(src.believes_co_resident(11, 10));
  CHECK_FALSE(src.believes_co_resident(10, 12)); // another group
  CHECK_FALSE(src.believes_co_resident(10, 20)); // another host
  CHECK(src.view_of(10) == std::vector<VmId>{11});
  CHECK(src.registration(11)->host == 1);

  // 11 migrates to host 2: the group table still says host 1.
  src.on_event(t.migrate_vm(11, 2, 10 * ms));
  CHECK(src.believes_co_resident(10, 11));
  CHECK(src.believes_co_resident(11, 10));
  CHECK_FALSE(src.believes_co_resident(20, 11));
  auto migration = records_of(src, 0);
  REQUIRE(migration.size() == 5); // 10, 12 (out), 20 (in), 11 (out, in)
  for (auto* r : migration) CHECK(r->t_notified == kNever);
  CHECK(windows.in_race_window(10, 11, 15 * ms) == ChangeKind::migration_out);
  CHECK(windows.in_race_window(12, 11, 15 * ms) == ChangeKind::migration_out);
  CHECK(windows.in_race_window(20, 11, 15 * ms) == ChangeKind::migration_in);
  CHECK(windows.in_race_window(11, 10, 15 * ms) == ChangeKind::migration_out);
  CHECK(windows.in_race_window(11, 20, 15 * ms) == ChangeKind::migration_in);

  auto v10 = src.view_version(10), v20 = src.view_version(20);
  src.register_vm(11, 7, 30 * ms);
  CHECK_FALSE(src.believes_co_resident(10, 11));
  CHECK(src.believes_co_resident(11, 20));
  CHECK(src.believes_co_resident(20, 11));
  CHECK(src.view_version(10) == v10 + 1);
  CHECK(src.view_version(20) == v20 + 1);
  for (auto* r : migration) CHECK(r->t_notified == 30 * ms);
  CHECK_FALSE(windows.in_race_window(10, 11, 30 * ms).has_value());
  CHECK(windows.in_race_window(10, 11, 29 * ms) == ChangeKind::migration_out); // after the fact

  // A created VM is in no group until it registers.
  src.on_event(t.create_vm(13, address(13), 1, 40 * ms));
  CHECK_FALSE(src.believes_co_resident(10, 13));
  CHECK(windows.in_race_window(10, 13, 45 * ms) == ChangeKind::creation);
  CHECK(windows.in_race_window(13, 10, 45 * ms) == ChangeKind::creation);
  src.register_vm(13, 7, 50 * ms);
  CHECK(src.believes_co_resident(10, 13));
  for (auto* r : records_of(src, 1)) CHECK(r->t_notified == 50 * ms);

  // A shutdown deregisters at once.
  CHECK(src.believes_co_resident(13, 10));
  src.on_event(t.shutdown_vm(10, 60 * ms));
  CHECK_FALSE(src.believes_co_resident(13, 10));
  auto shutdown = records_of(src, 2);
  REQUIRE(shutdown.size() == 2); // 12, 13
  for (auto* r : shutdown) {
    CHECK(r->kind == ChangeKind::shutdown);
    CHECK(r->t_notified == 60 * ms);
  }
  CHECK_THROWS_AS(src.register_vm(99, 7, 70 * ms), TopologyError);
}

// ---------------------------------------------------------------------------------------------
// Periodic scan (XenLoop, MemPipe)

TEST_CASE("periodic scan: t_notified is the first scan at or after the event", "[periodic]") {
  auto [phase, delay, t_event, expected] = GENERATE(table<Nanos, Nanos, Nanos, Nanos>({
      {0, 0, 12 * ms, 20 * ms},
      {3 * ms, 0, 12 * ms, 13 * ms},
      {3 * ms, 0, 13 * ms, 13 * ms}, // on a scan: reported before the scan runs
      {0, 0, 20 * ms, 20 * ms},
      {7 * ms, 2 * ms, 12 * ms, 19 * ms}, // scan at 17, views change 2 ms later
      {7 * ms, 2 * ms, 17 * ms + 1, 29 * ms},
      {-3 * ms, 0, 12 * ms, 17 * ms}, // a negative phase is taken modulo the period
  }));
  CAPTURE(phase, delay, t_event);
  Topology t = small_world();
  PeriodicScanSource src(t, 10 * ms, phase, delay);
  CHECK(src.period() == 10 * ms);
  run_before(src, t_event);
  src.on_event(t.migrate_vm(11, 2, t_event));

  run_until(src, expected - 1);
  CHECK(src.believes_co_resident(10, 11));
  CHECK(src.believes_co_resident(11, 10));
  CHECK_FALSE(src.believes_co_resident(20, 11));
  run_until(src, expected);
  CHECK_FALSE(src.believes_co_resident(10, 11));
  CHECK_FALSE(src.believes_co_resident(11, 10));
  CHECK(src.believes_co_resident(20, 11));
  CHECK(src.believes_co_resident(11, 20));

  auto records = records_of(src, 0);
  REQUIRE(records.size() == 4);
  for (auto* r : records) {
    CHECK(r->t_event == t_event);
    CHECK(r->t_notified == expected);
  }
}

TEST_CASE("periodic scan: each observer learns from its own host's scanner", "[periodic]") {
  // phase_step 1 ms: host 1 scans at 1, 11, 21 ms...; host 2 at 2, 12, 22 ms...
  Topology t = small_world();
  PeriodicScanSource src(t, 10 * ms, 0, 0, 1 * ms);
  CHECK(src.next_scan(1) == 1 * ms);
  CHECK(src.next_scan(2) == 2 * ms);
  Topology far;
  far.add_host(7);
  CHECK(PeriodicScanSource(far, 10 * ms, 0, 0, 3 * ms).next_scan(7) == 1 * ms); // 21 mod 10
  CHECK(PeriodicScanSource(far, 10 * ms, -3 * ms, 0, 3 * ms).next_scan(7) == 8 * ms);
  run_before(src, 12 * ms + 500 * us);
  src.on_event(t.migrate_vm(11, 2, 12 * ms + 500 * us));
  run_until(src, 30 * ms);
  std::map<std::pair<VmId, ChangeKind>, Nanos> got;
  for (auto* r : records_of(src, 0)) got[{r->observer, r->kind}] = r->t_notified;
  CHECK(got == std::map<std::pair<VmId, ChangeKind>, Nanos>{
                   {{10, ChangeKind::migration_out}, 21 * ms},
                   {{20, ChangeKind::migration_in}, 22 * ms},
                   {{11, ChangeKind::migration_out}, 22 * ms}, // 11 is on host 2 now
                   {{11, ChangeKind::migration_in}, 22 * ms},
               });
}

TEST_CASE("periodic scan: creation, shutdown, views, versions and callbacks", "[periodic]") {
  Topology t = small_world();
  PeriodicScanSource src(t, 10 * ms);
  std::vector<std::pair<VmId, Nanos>> changed;
  src.subscribe([&](VmId vm, Nanos now) { changed.emplace_back(vm, now); });
  CHECK(src.view_of(10) == std::vector<VmId>{11}); // start-up views are the truth

  run_before(src, 3 * ms);
  src.on_event(t.create_vm(12, address(12), 1, 3 * ms));
  src.on_event(t.shutdown_vm(20, 4 * ms));
  CHECK(src.next_due() == 10 * ms);
  CHECK_FALSE(src.believes_co_resident(10, 12)); // deferred establishment
  CHECK(src.view_of(12).empty());
  auto v10 = src.view_version(10);
  run_until(src, 10 * ms);
  CHECK(src.view_of(10) == std::vector<VmId>{11, 12});
  CHECK(src.view_of(12) == std::vector<VmId>{10, 11});
  CHECK(src.view_version(10) == v10 + 1);
  std::sort(changed.begin(), changed.end());
  CHECK(changed ==
        std::vector<std::pair<VmId, Nanos>>{{10, 10 * ms}, {11, 10 * ms}, {12, 10 * ms}});
  for (const auto& r : src.records()) CHECK(r.t_notified == (r.change == 0 ? 10 * ms : kNever));
  // The shutdown of 20 had no observers: host 2 is empty now.
  CHECK(records_of(src, 1).empty());
}

TEST_CASE("periodic scan: probes count the VMs scanned", "[periodic]") {
  Topology t;
  for (HostId h : {1u, 2u, 3u}) t.add_host(h);
  for (VmId v : {10u, 11u, 12u}) t.create_vm(v, address(v), 1, 0);
  for (VmId v : {20u, 21u}) t.create_vm(v, address(v), 2, 0);
  PeriodicScanSource src(t, 10 * ms);
  run_until(src, 25 * ms); // scans at 0, 10, 20 on three hosts
  CHECK(src.scans() == 9);
  CHECK(src.probes() == 3 * (3 + 2 + 0));
  src.on_event(t.migrate_vm(12, 3, 26 * ms));
  run_until(src, 30 * ms);
  CHECK(src.scans() == 12);
  CHECK(src.probes() == 15 + 2 + 2 + 1);
  // A late run_due coalesces the scans it missed into one per host.
  src.run_due(95 * ms);
  CHECK(src.scans() == 15);
  CHECK(src.next_scan(1) == 100 * ms);
}

// ---------------------------------------------------------------------------------------------
// Adaptive scan

namespace {
// Hosts 1..6 in three pairs; VM 10 + p moves between hosts 2p+1 and 2p+2 (p = 0, 1, 2) at
// rates[p] migrations a second (Poisson, fixed seed). Returns the source after `until`.
struct AdaptiveWorld {
  Topology t;
  std::unique_ptr<AdaptiveScanSource> src;
  std::mt19937_64 rng{7};
  std::vector<double> rates;
  std::vector<Nanos> next;
  AdaptiveWorld(std::vector<double> r, AdaptiveScanSource::Params p) : rates(std::move(r)) {
    for (HostId h = 1; h <= 2 * rates.size(); ++h) t.add_host(h);
    for (std::size_t i = 0; i < rates.size(); ++i) {
      t.create_vm(static_cast<VmId>(10 + i), address(static_cast<VmId>(10 + i)),
                  static_cast<HostId>(2 * i + 1), 0);
      next.push_back(draw(i, 0));
    }
    src = std::make_unique<AdaptiveScanSource>(t, p);
  }
  Nanos draw(std::size_t i, Nanos from) {
    if (rates[i] <= 0) return kNever;
    std::exponential_distribution<double> gap(rates[i]);
    return from + static_cast<Nanos>(gap(rng) * 1e9) + 1;
  }
  // Plays migrations and scans up to `until`; calls watch() after every scan.
  template <class F>
  void run(Nanos until, F&& watch) {
    for (int guard = 0;; ++guard) {
      if (guard == 50'000'000) FAIL("next_due() does not move on");
      auto first = std::min_element(next.begin(), next.end());
      const Nanos scan = src->next_due();
      if (std::min(scan, *first) > until) return;
      if (scan <= *first) {
        src->run_due(scan);
        watch();
        continue;
      }
      const std::size_t i = static_cast<std::size_t>(first - next.begin());
      const VmId vm = static_cast<VmId>(10 + i);
      const HostId home = static_cast<HostId>(2 * i + 1);
      src->on_event(t.migrate_vm(vm, t.host_of(vm) == home ? home + 1 : home, *first));
      *first = draw(i, *first);
    }
  }
  void run(Nanos until) {
    run(until, [] {});
  }
};

// Bounds 1 ms..1 s, initial period 100 ms, a scan worth 2.5 ms of race window.
AdaptiveScanSource::Params adaptive_params(Nanos horizon) {
  AdaptiveScanSource::Params p;
  p.period_min = 1 * ms;
  p.period_max = 1 * sec;
  p.initial_period = 100 * ms;
  p.probe_worth = 2500 * us;
  p.horizon = horizon;
  return p;
}
} // namespace

TEST_CASE("adaptive scan: the square-root law per host, steady under a steady rate", "[adaptive]") {
  const AdaptiveScanSource::Params p = adaptive_params(30 * sec);
  // Pair 0 moves 5 times a second, pair 1 once every 10 s, pair 2 never.
  AdaptiveWorld w({5.0, 0.1, 0.0}, p);
  CHECK(w.src->period(1) == 100 * ms); // before any scan: the initial period
  // r0 = 2 c / T0^2 = 0.5 changes a second.
  CHECK(w.src->rate_per_second(1) == Approx(0.5));

  w.run(300 * sec);
  // sqrt(2 c / r): 5 changes/s on each of hosts 1, 2 -> 31.6 ms; 0.1/s -> 224 ms; none -> T_max.
  const double busy = std::sqrt(2 * 2.5e-3 / 5.0) * 1e9;
  const double calm = std::sqrt(2 * 2.5e-3 / 0.1) * 1e9;
  Nanos lo = kNever, hi = 0;
  double calm_sum = 0;
  int calm_n = 0;
  w.run(600 * sec, [&] {
    lo = std::min(lo, w.src->period(1));
    hi = std::max(hi, w.src->period(1));
    calm_sum += static_cast<double>(w.src->period(3));
    ++calm_n;
  });
  CHECK(static_cast<double>(w.src->period(1)) == Approx(busy).epsilon(0.15));
  CHECK(static_cast<double>(w.src->period(2)) == Approx(busy).epsilon(0.15));
  // Steady: over 300 s of 5 changes a second, the period stays within 25 % of the law's.
  CHECK(static_cast<double>(lo) > 0.75 * busy);
  CHECK(static_cast<double>(hi) < 1.25 * busy);
  // A rare rate is estimated from few changes: right within a factor of 1.5 on average.
  CHECK(calm_sum / calm_n > calm / 1.5);
  CHECK(calm_sum / calm_n < calm * 1.5);
  CHECK(w.src->period(5) == 1 * sec); // no change ever: T_max
  CHECK(w.src->period(6) == 1 * sec);
  CHECK(w.src->rate_per_second(1) == Approx(5.0).epsilon(0.3));
}

TEST_CASE("adaptive scan: a change of rate is followed within a few horizons, within bounds",
          "[adaptive]") {
  const AdaptiveScanSource::Params p = adaptive_params(5 * sec);
  AdaptiveWorld w({0.2}, p);
  w.run(60 * sec);
  const Nanos calm = w.src->period(1);
  CHECK(calm > 100 * ms);
  // A burst: 50 migrations a second for 20 s. The law asks for 10 ms.
  w.rates[0] = 50;
  w.next[0] = w.draw(0, 60 * sec);
  w.run(80 * sec);
  CHECK(static_cast<double>(w.src->period(1)) == Approx(10e6).epsilon(0.3));
  // Faster than the bound allows: clamped to T_min.
  w.rates[0] = 100'000;
  w.next[0] = w.draw(0, 80 * sec);
  w.run(81 * sec);
  CHECK(w.src->period(1) == 1 * ms);
  // Quiet again: the period grows back to T_max as the estimate decays.
  w.rates[0] = 0;
  w.next[0] = kNever;
  w.run(200 * sec); // the period doubles every 2 H ln 2 = 7 s of quiet
  CHECK(w.src->period(1) == 1 * sec);
  CHECK(w.src->period(2) == 1 * sec);

  Topology t = small_world();
  CHECK_THROWS_AS(AdaptiveScanSource(t, AdaptiveScanSource::Params{.period_min = 0}),
                  std::invalid_argument);
  CHECK_THROWS_AS(AdaptiveScanSource(t, AdaptiveScanSource::Params{.probe_worth = 0}),
                  std::invalid_argument);
  CHECK_THROWS_AS(AdaptiveScanSource(t, AdaptiveScanSource::Params{.horizon = -1}),
                  std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Event watch (XenVMC, MMNet) and synchronous update

TEST_CASE("watch: each event is advertised after the delay d", "[watch]") {
  Nanos d = GENERATE(Nanos{0}, EventWatchSource::kDefaultDelay, 3 * ms);
  CAPTURE(d);
  Topology t = small_world();
  EventWatchSource src(t, d);
  CHECK(EventWatchSource(t).delay() == 50 * us);
  CHECK(src.next_due() == kNever);

  src.on_event(t.create_vm(12, address(12), 1, 1 * ms));
  CHECK(src.next_due() == 1 * ms + d);
  run_before(src, 1 * ms + d);
  CHECK_FALSE(src.believes_co_resident(10, 12));
  run_until(src, 1 * ms + d);
  CHECK(src.believes_co_resident(10, 12));
  CHECK(src.believes_co_resident(12, 11));

  run_before(src, 2 * ms);
  src.on_event(t.migrate_vm(11, 2, 2 * ms));
  run_before(src, 2 * ms + 10 * us);
  src.on_event(t.shutdown_vm(20, 2 * ms + 10 * us));
  run_before(src, 2 * ms + d);
  CHECK((d == 0) != src.believes_co_resident(10, 11));
  run_until(src, 10 * ms);
  CHECK_FALSE(src.believes_co_resident(10, 11));
  CHECK(src.view_of(11).empty()); // 20, its one co-resident, shut down
  CHECK(src.view_of(10) == std::vector<VmId>{12});

  std::size_t delivered = 0;
  for (const auto& r : src.records()) {
    CAPTURE(r.change, r.observer);
    // 20 died 10 us after the migration: it hears of it only if d < 10 us.
    bool lost = r.observer == 20 && d >= 10 * us;
    CHECK(r.t_notified == (lost ? kNever : r.t_event + d));
    delivered += !lost;
  }
  CHECK(src.probes() == delivered);
  auto s = summarise(src.records());
  for (auto kind : {ChangeKind::creation, ChangeKind::migration_in, ChangeKind::migration_out,
                    ChangeKind::shutdown}) {
    CHECK(s[kind].mean == Approx(static_cast<double>(d)));
    CHECK(s[kind].max == d);
  }
}

TEST_CASE("sync: views change inside on_event, no race window opens", "[sync]") {
  Topology t = small_world();
  SynchronousSource src(t);
  RaceWindows windows(src);
  std::vector<VmId> changed;
  src.subscribe([&](VmId vm, Nanos now) {
    CHECK(now == 5 * ms);
    changed.push_back(vm);
  });
  src.on_event(t.migrate_vm(11, 2, 5 * ms));
  CHECK_FALSE(src.believes_co_resident(10, 11));
  CHECK(src.believes_co_resident(11, 20));
  CHECK(src.believes_co_resident(20, 11));
  std::sort(changed.begin(), changed.end());
  CHECK(changed == std::vector<VmId>{10, 11, 20});
  CHECK(src.next_due() == kNever);
  for (const auto& r : src.records()) CHECK(r.t_notified == r.t_event);
  CHECK(src.probes() == src.records().size());
  for (VmId a : {10u, 11u, 20u})
    for (VmId b : {10u, 11u, 20u}) CHECK_FALSE(windows.in_race_window(a, b, 5 * ms).has_value());
}

// ---------------------------------------------------------------------------------------------
// All sources

TEST_CASE("every source: the same records, views converge, race windows match the rule",
          "[sources]") {
  std::string kind = GENERATE("static", "group", "periodic", "adaptive", "watch", "sync");
  CAPTURE(kind);
  Topology t;
  for (HostId h : {1u, 2u, 3u}) t.add_host(h);
  for (auto [vm, host] : {std::pair{10u, 1u}, {11u, 1u}, {20u, 2u}, {21u, 2u}, {30u, 3u}})
    t.create_vm(vm, address(vm), host, 0);
  SynchronousSource reference(t);
  MembershipParams params;
  params.static_list_text = "host 1: 10 11\nhost 2: 20 21\nhost 3: 30\n";
  params.period = 4 * ms;
  params.phase = 1 * ms;
  params.period_min = 1 * ms;
  params.period_max = 8 * ms;
  params.watch_delay = 3 * ms;
  auto src = make_membership_source(kind, t, params);
  auto* group = dynamic_cast<GroupRegistrationSource*>(src.get());
  if (group)
    for (VmId v : {10u, 11u, 20u, 21u, 30u}) group->register_vm(v, 1, 0);

  // Membership changes, and (for the group source) the subject re-registering 2 ms later.
  struct Step {
    Nanos time;
    std::function<TopologyEvent()> change;
    VmId registers = 0;
  };
  std::vector<Step> steps = {
      {5 * ms, [&] { return t.migrate_vm(11, 2, 5 * ms); }},
      {7 * ms, [&] { return t.create_vm(12, address(12), 1, 7 * ms); }},
      {7 * ms, nullptr, 11},
      {9 * ms, [&] { return t.migrate_vm(20, 1, 9 * ms); }},
      {9 * ms, nullptr, 12},
      {11 * ms, nullptr, 20},
      {15 * ms, [&] { return t.shutdown_vm(21, 15 * ms); }},
      {16 * ms, [&] { return t.migrate_vm(11, 3, 16 * ms); }},
      {16 * ms + 100 * us, [&] { return t.migrate_vm(11, 1, 16 * ms + 100 * us); }},
      {18 * ms, nullptr, 11},
      {30 * ms, [&] { return t.create_vm(31, address(31), 3, 30 * ms); }},
      {31 * ms, [&] { return t.migrate_vm(10, 3, 31 * ms); }},
      {32 * ms, nullptr, 31},
      {33 * ms, nullptr, 10},
  };
  for (auto& step : steps) {
    run_before(*src, step.time);
    if (step.change) {
      auto e = step.change();
      src->on_event(e);
      reference.on_event(e);
    } else if (group) {
      group->register_vm(step.registers, 1, step.time);
    }
  }
  run_until(*src, 100 * ms);

  // Same changes, same observers, same kinds, whatever the policy.
  CHECK(keys(src->records()) == keys(reference.records()));
  CHECK(src->records().size() == 32);
  // Notified at or after the event, each (observer, subject) pair in change order.
  std::map<std::pair<VmId, VmId>, Nanos> last;
  for (const auto& r : src->records()) {
    CHECK(r.t_notified >= r.t_event);
    auto& l = last[{r.observer, r.subject}];
    CHECK(r.t_notified >= l);
    l = r.t_notified;
  }
  // Views: the truth for live VMs, except the static list, which never changes.
  auto* views = dynamic_cast<ViewKeepingSource*>(src.get());
  REQUIRE(views);
  const std::map<VmId, std::vector<VmId>> listed = {{10, {11}}, {11, {10}}, {12, {}},
                                                    {20, {21}}, {30, {}},   {31, {}}};
  for (auto [v, in_list] : listed) {
    CAPTURE(v);
    CHECK(views->view_of(v) == (kind == "static" ? in_list : truth_view(t, v)));
  }
  // The indexed race windows agree with the rule applied by brute force.
  RaceWindows windows(*src);
  std::size_t open = 0;
  for (Nanos now = 0; now <= 40 * ms; now += 250 * us)
    for (VmId a : {10u, 11u, 12u, 20u, 21u, 30u, 31u})
      for (VmId b : {10u, 11u, 12u, 20u, 21u, 30u, 31u}) {
        auto expected = race_oracle(src->records(), a, b, now);
        auto got = windows.in_race_window(a, b, now);
        if (got != expected) {
          CAPTURE(a, b, now);
          CHECK(got == expected);
        }
        open += got.has_value();
      }
  if (kind == "sync")
    CHECK(open == 0);
  else
    CHECK(open > 0);
}

TEST_CASE("race windows: Table IV kinds, live, for observers and for the moving VM", "[race]") {
  Topology t = small_world();
  PeriodicScanSource src(t, 10 * ms);
  RaceWindows windows(src);
  run_before(src, 12 * ms);
  src.on_event(t.migrate_vm(11, 2, 12 * ms));
  CHECK_FALSE(windows.in_race_window(10, 11, 11 * ms).has_value());
  CHECK(windows.in_race_window(10, 11, 12 * ms) == ChangeKind::migration_out);
  CHECK(windows.in_race_window(20, 11, 15 * ms) == ChangeKind::migration_in);
  CHECK(windows.in_race_window(11, 10, 15 * ms) == ChangeKind::migration_out);
  CHECK(windows.in_race_window(11, 20, 15 * ms) == ChangeKind::migration_in);
  CHECK_FALSE(windows.in_race_window(10, 20, 15 * ms).has_value()); // neither changed
  CHECK_FALSE(windows.in_race_window(10, 10, 15 * ms).has_value());
  run_until(src, 20 * ms);
  CHECK_FALSE(windows.in_race_window(10, 11, 20 * ms).has_value());
  CHECK_FALSE(windows.in_race_window(11, 10, 20 * ms).has_value());

  src.on_event(t.create_vm(12, address(12), 1, 25 * ms));
  CHECK(windows.in_race_window(10, 12, 27 * ms) == ChangeKind::creation);
  CHECK(windows.in_race_window(12, 10, 27 * ms) == ChangeKind::creation);
  src.on_event(t.shutdown_vm(20, 28 * ms));
  CHECK(windows.in_race_window(11, 20, 29 * ms) == ChangeKind::shutdown);
  // Two changes in one window: the latest is the one that counts.
  src.on_event(t.migrate_vm(11, 1, 29 * ms));
  src.on_event(t.migrate_vm(11, 3, 29 * ms + 500 * us));
  CHECK(windows.in_race_window(10, 11, 29 * ms + 200 * us) == ChangeKind::migration_in);
  CHECK(windows.in_race_window(10, 11, 29 * ms + 700 * us) == ChangeKind::migration_out);
  run_until(src, 30 * ms);
  for (VmId a : {10u, 11u, 12u})
    for (VmId b : {10u, 11u, 12u, 20u})
      CHECK_FALSE(windows.in_race_window(a, b, 30 * ms).has_value());
}

TEST_CASE("summary: mean and max notification latency per change kind", "[race]") {
  std::vector<NotificationRecord> records = {
      {0, ChangeKind::migration_out, 1, 2, 100, 110},
      {0, ChangeKind::migration_out, 1, 3, 100, 130},
      {1, ChangeKind::creation, 4, 2, 200, kNever},
      {1, ChangeKind::creation, 4, 3, 200, 205},
      {2, ChangeKind::migration_in, 5, 2, 300, 300},
  };
  auto s = summarise(records);
  CHECK(s[ChangeKind::migration_out].records == 2);
  CHECK(s[ChangeKind::migration_out].mean == Approx(20));
  CHECK(s[ChangeKind::migration_out].max == 30);
  CHECK(s[ChangeKind::creation].records == 2);
  CHECK(s[ChangeKind::creation].notified == 1);
  CHECK(s[ChangeKind::creation].mean == Approx(5));
  CHECK(s[ChangeKind::migration_in].mean == Approx(0));
  CHECK(s[ChangeKind::shutdown].records == 0);
  CHECK(s.all.records == 5);
  CHECK(s.all.notified == 4);
  CHECK(s.all.mean == Approx((10 + 30 + 5 + 0) / 4.0));
  CHECK(s.all.max == 30);
  CHECK(to_string(ChangeKind::migration_out) == "migration_out");
}

TEST_CASE("factory: every kind by name, bad names and parameters are refused", "[sources]") {
  Topology t = small_world();
  MembershipParams params;
  params.period = 7 * ms;
  params.watch_delay = 3 * us;
  for (auto kind : membership_source_kinds()) {
    auto src = make_membership_source(kind, t, params);
    CHECK(src->name() == kind);
  }
  CHECK(membership_source_kinds().size() == 6);
  CHECK(
      dynamic_cast<PeriodicScanSource&>(*make_membership_source("periodic", t, params)).period() ==
      7 * ms);
  CHECK(dynamic_cast<EventWatchSource&>(*make_membership_source("watch", t, params)).delay() ==
        3 * us);
  CHECK(
      dynamic_cast<AdaptiveScanSource&>(*make_membership_source("adaptive", t, params)).period(1) ==
      7 * ms);
  CHECK_THROWS_WITH(make_membership_source("xenstore", t),
                    "unknown membership source 'xenstore' (expected one of: static, group, "
                    "periodic, adaptive, watch, sync)");
  params.period = 0;
  CHECK_THROWS_AS(make_membership_source("periodic", t, params), std::invalid_argument);
  params.static_list_path = "/nonexistent/ivmc/xway.conf";
  CHECK_THROWS_AS(make_membership_source("static", t, params), StaticListError);
}

TEST_CASE("sources refuse events that do not match the topology or go back in time", "[sources]") {
  Topology t = small_world();
  EventWatchSource src(t);
  // Reported late: the topology already shows a later state of the VM.
  auto e = t.migrate_vm(11, 2, 5 * ms);
  t.migrate_vm(11, 3, 6 * ms);
  CHECK_THROWS_AS(src.on_event(e), std::logic_error);
  src.on_event(t.migrate_vm(10, 2, 7 * ms));
  TopologyEvent early{TopologyEvent::Kind::migrate, 10, 2, 3, 6 * ms};
  CHECK_THROWS_WITH(src.on_event(early), Catch::Contains("is before the previous one"));
}

// ---------------------------------------------------------------------------------------------
// Trust (survey 3.6.2)

TEST_CASE("trust: both sides must allow, refusals are counted", "[trust]") {
  TrustList trust;
  CHECK_FALSE(trust.allows(1, 2)); // default deny
  trust.allow(1, 2);
  CHECK(trust.allows(1, 2));
  CHECK_FALSE(trust.allows(2, 1)); // one direction only
  CHECK_FALSE(trust.may_connect(1, 2));
  CHECK(trust.refusals() == 1);
  CHECK(trust.refusals_by(2) == 1);
  CHECK(trust.refusals_by(1) == 0);
  trust.allow(2, 1);
  CHECK(trust.may_connect(1, 2));
  CHECK(trust.may_connect(2, 1));
  CHECK(trust.refusals() == 1);
  trust.revoke(1, 2);
  CHECK_FALSE(trust.may_connect(2, 1));
  CHECK(trust.refusals_by(1) == 1);
  CHECK_FALSE(trust.may_connect(3, 4));
  CHECK(trust.refusals() == 3);
  CHECK(trust.refusals_by(3) == 1);
  CHECK(trust.refusals_by(4) == 1);
}
