// Live migration of a real guest between two "hosts" (two ivshmem servers, each with its own
// shm object) through QMP, while the guest streams through its ivshmem region.
//
// The guest's ivshmem-doorbell device is master=on (peer mode blocks migration), so its region
// migrates with it. The destination QEMU (-incoming) connects to host B's server. QEMU insists
// that a master=on device is its server's first peer, so the guest has peer id 0 on both hosts:
// the id cannot tell it moved. Instead each host's membership source writes its identity into
// the host word of the region (last page) when a guest arrives: A before the boot, B on the
// destination's RESUME event; the agent sees the word change (a topology change). The agent
// streams between two endpoints of one channel in its own region the whole time; after the
// move it sends 32 MiB more and must end with every byte, in order, with the stream's checksum.
#include "vm_fixture.hpp"

#include "ivmc/kvm/ivshmem_link_stream.hpp"
#include "ivmc/kvm/kvm_membership.hpp"
#include "ivmc/kvm/qmp.hpp"
#include "ivmc/posix/tcp_path.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

using namespace ivmc;
using namespace ivmc::vmtest;

namespace {

constexpr std::size_t kHostWord = (1u << 20) - 4096; // the region's last page

// The agent's `loop` across migrations: both ends of one channel in the guest, watching the
// host word, 32 MiB more after the `moves`-th host change.
std::vector<std::string> loop_agent(unsigned moves) {
  return {"loop",
          "--policy",
          "on_demand",
          "--bytes",
          "64G",
          "--after",
          "32M",
          "--moves",
          std::to_string(moves),
          "--timeout",
          "120",
          "--host-word",
          std::to_string(kHostWord)};
}

} // namespace

TEST_CASE("a guest live-migrates to another host while streaming (QMP)", "[vm][migration]") {
  Host host_a("mig-a"), host_b("mig-b");
  REQUIRE(Channel::area_bytes(kRing, kRing) <= kHostWord);
  host_a.set_host_word(kHostWord, 1);

  const std::string base = "/tmp/ivmc-vm-mig-" + std::to_string(::getpid());
  const std::string qmp_a = base + "-a.qmp", qmp_b = base + "-b.qmp";
  const std::string uri = "unix:" + base + ".migrate";
  const std::vector<std::string> agent = loop_agent(1);
  auto source = launch(&host_a, {"mig-source", agent, false, {}, true, qmp_a, ""});
  auto dest = launch(&host_b, {"mig-dest", agent, false, {}, true, qmp_b, uri});

  REQUIRE(source->wait_for_console("IVMC-INFO loop started", kBootBudget));
  auto qa = kvm::QmpClient::connect(qmp_a, 10 * kSecond);
  auto qb = kvm::QmpClient::connect(qmp_b, 10 * kSecond);
  const std::string events = R"({"capabilities": [{"capability": "events", "state": true}]})";
  qa.execute("migrate-set-capabilities", events, 10 * kSecond);
  qb.execute("migrate-set-capabilities", events, 10 * kSecond);
  std::this_thread::sleep_for(std::chrono::seconds(1)); // the stream is under way

  const Nanos t0 = posix::MonotonicClock::read();
  qa.execute("migrate", R"({"uri": ")" + uri + R"("})", 10 * kSecond);
  const auto completed = qa.wait_event("MIGRATION", "completed", 60 * kSecond);
  INFO("source events: " << qa.history().size()
                         << "; last: " << (qa.history().empty() ? "" : qa.history().back().json));
  REQUIRE(completed.has_value());
  const Nanos wall = completed->received - t0;
  const auto resumed = qb.wait_event("RESUME", "", 30 * kSecond);
  REQUIRE(resumed.has_value());
  host_b.set_host_word(kHostWord, 2); // B's membership source: a guest arrived
  REQUIRE(qb.wait_event("MIGRATION", "completed", 30 * kSecond).has_value());
  std::optional<kvm::QmpEvent> stopped;
  for (const kvm::QmpEvent& ev : qa.history())
    if (ev.name == "STOP") stopped = ev;
  REQUIRE(stopped.has_value());
  // QEMU emits MIGRATION completed before it computes the totals: ask until they are there.
  std::string info;
  for (int i = 0; i < 100; ++i) {
    info = qa.execute("query-migrate", "", 10 * kSecond);
    if (kvm::json_number(info, "total-time").value_or(0) > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  INFO(info);
  CHECK(kvm::json_string(info, "status") == "completed");
  CHECK(kvm::json_number(info, "total-time").value_or(0) > 0);
  const double total_ms = kvm::json_number(info, "total-time").value_or(-1);
  const double downtime_ms = kvm::json_number(info, "downtime").value_or(-1);
  source->kill(); // paused after the migration: its job is done

  const kvm::GuestOutcome out = dest->wait();
  const posix::ReportFields r = result_of(out);
  CHECK(out.console.find("IVMC-TOPOLOGY") != std::string::npos);
  CHECK(r.at("ok") == "1");
  CHECK(r.at("id_before") == "0");
  CHECK(r.at("id_after") == "0"); // master=on: the first peer on either server
  CHECK(r.at("host_before") == "1");
  CHECK(r.at("host_after") == "2"); // B's word: the guest can tell it moved
  CHECK(r.at("moved") == "1");
  CHECK(std::stoull(r.at("moved_at")) > 0);
  CHECK(r.at("bytes") == r.at("sent"));
  const std::uint64_t bytes = std::stoull(r.at("bytes"));
  CHECK(bytes >= std::stoull(r.at("moved_at")) + (32u << 20));
  CHECK(r.at("checksum") == hex16(posix::expected_checksum(bytes)));

  figure("live migration 256 MiB guest: total (query-migrate)", total_ms, "ms");
  figure("live migration: downtime (query-migrate)", downtime_ms, "ms");
  figure("live migration: source STOP -> destination RESUME",
         (resumed->timestamp - stopped->timestamp) * 1e3, "ms");
  figure("live migration: migrate command -> MIGRATION completed (wall)", wall / 1e6, "ms");
  figure("live migration: longest gap between messages in the guest",
         std::stoll(r.at("max_gap_ns")) / 1e6, "ms");
}

namespace {

struct Migration {
  double total_ms = -1, downtime_ms = -1, stop_to_resume_ms = -1;
};

// Migrates the guest behind `from` to the -incoming QEMU behind `to` (listening on `uri`) and
// hands the destination's RESUME event to `arrived` (the membership source's input).
template <class Arrived>
Migration migrate(kvm::QmpClient& from, kvm::QmpClient& to, const std::string& uri,
                  Arrived arrived) {
  const std::string events = R"({"capabilities": [{"capability": "events", "state": true}]})";
  from.execute("migrate-set-capabilities", events, 10 * kSecond);
  to.execute("migrate-set-capabilities", events, 10 * kSecond);
  from.discard_events(); // `from` may have arrived by migration itself: its old events
  to.discard_events();
  const std::size_t before = from.history().size();
  from.execute("migrate", R"({"uri": ")" + uri + R"("})", 10 * kSecond);
  REQUIRE(from.wait_event("MIGRATION", "completed", 60 * kSecond).has_value());
  const auto resumed = to.wait_event("RESUME", "", 30 * kSecond);
  REQUIRE(resumed.has_value());
  arrived(*resumed);
  Migration m;
  for (std::size_t i = before; i < from.history().size(); ++i)
    if (from.history()[i].name == "STOP")
      m.stop_to_resume_ms = (resumed->timestamp - from.history()[i].timestamp) * 1e3;
  for (int i = 0; i < 100; ++i) { // the totals come a little after the completed event
    const std::string info = from.execute("query-migrate", "", 10 * kSecond);
    m.total_ms = kvm::json_number(info, "total-time").value_or(0);
    m.downtime_ms = kvm::json_number(info, "downtime").value_or(0);
    if (kvm::json_string(info, "status") == "completed" && m.total_ms > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return m;
}

} // namespace

// There and back: A -> B -> A. Host A's server gives ID 0 again when it is free (QEMU admits
// a master=on device only as ID 0) while a host process stays connected to A the whole time;
// the guest sees the host word go 1 -> 2 -> 1. The region comes back with the guest (its
// incoming migration overwrites host A's region), so nothing else may use A's region meanwhile.
TEST_CASE("a guest live-migrates to another host and back while streaming", "[vm][migration]") {
  Host host_a("mig2-a", 1u << 20, true), host_b("mig2-b");
  host_a.set_host_word(kHostWord, 1);
  const std::string base = "/tmp/ivmc-vm-mig2-" + std::to_string(::getpid());
  const std::string to_b = "unix:" + base + ".to-b", to_a = "unix:" + base + ".to-a";
  const std::vector<std::string> agent = loop_agent(2);
  auto first = launch(&host_a, {"mig2-a", agent, false, {}, true, base + "-a.qmp", ""});
  REQUIRE(first->wait_for_console("IVMC-INFO loop started", kBootBudget));
  // A host process on A, connected throughout: it holds the next round-robin ID.
  auto resident = kvm::HostPlatform::connect(host_a.socket(), 5 * kSecond, kVectors);
  CHECK(resident->id() != 0);

  auto on_b = launch(&host_b, {"mig2-b", agent, false, {}, true, base + "-b.qmp", to_b});
  auto qa = kvm::QmpClient::connect(base + "-a.qmp", 10 * kSecond);
  auto qb = kvm::QmpClient::connect(base + "-b.qmp", 10 * kSecond);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const Migration out =
      migrate(qa, qb, to_b, [&](const kvm::QmpEvent&) { host_b.set_host_word(kHostWord, 2); });
  first->kill(); // paused: at most two QEMUs at once
  REQUIRE(on_b->wait_for_console("IVMC-TOPOLOGY", 30 * kSecond));

  auto back = launch(&host_a, {"mig2-back", agent, false, {}, true, base + "-a2.qmp", to_a});
  auto qa2 = kvm::QmpClient::connect(base + "-a2.qmp", 10 * kSecond);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const Migration ret =
      migrate(qb, qa2, to_a, [&](const kvm::QmpEvent&) { host_a.set_host_word(kHostWord, 1); });
  on_b->kill();

  const kvm::GuestOutcome end = back->wait();
  const posix::ReportFields r = result_of(end);
  CHECK(r.at("ok") == "1");
  CHECK(r.at("moves") == "2");
  CHECK(r.at("hosts") == "1,2,1");
  CHECK(out.total_ms > 0);
  CHECK(ret.total_ms > 0);
  CHECK(ret.stop_to_resume_ms > 0);
  CHECK(r.at("bytes") == r.at("sent"));
  const std::uint64_t bytes = std::stoull(r.at("bytes"));
  CHECK(r.at("checksum") == hex16(posix::expected_checksum(bytes)));
  figure("live migration A -> B: total", out.total_ms, "ms");
  figure("live migration A -> B: downtime", out.downtime_ms, "ms");
  figure("live migration B -> A: total", ret.total_ms, "ms");
  figure("live migration B -> A: downtime", ret.downtime_ms, "ms");
  figure("live migration B -> A: source STOP -> destination RESUME", ret.stop_to_resume_ms, "ms");
}

// The link across migration: a guest streams to a host process on host A through a link, the
// shared-memory channel while both are on A and the resumable TCP path (user networking to
// 10.0.2.2) otherwise. The guest migrates A -> B -> A. Each arrival is announced by the host
// word (B's, then A's membership source); the guest's link switches to TCP after the first
// move and back to a new channel instance after the second. Whatever the guest wrote into its
// copy of the region after the first move is re-sent over TCP; the receiver checks every byte
// in place, so one lost, duplicated or reordered byte fails the test.
TEST_CASE("a guest's link goes remote when it migrates away and local again when it returns",
          "[vm][migration][link]") {
  // The hosts' membership source: QMP's RESUME events and the servers' notices in, host words
  // out (event-driven).
  kvm::KvmMembershipOptions mo;
  mo.host_word = kHostWord;
  kvm::KvmMembership membership(mo);
  Host host_a("link-a", 1u << 20, true,
              [&](std::uint16_t peer, bool up) { membership.on_server_notice(1, peer, up); });
  Host host_b("link-b", 1u << 20, false,
              [&](std::uint16_t peer, bool up) { membership.on_server_notice(2, peer, up); });
  membership.add_host(1, host_a.shm_name());
  membership.add_host(2, host_b.shm_name());
  constexpr VmId kGuest = 1;
  membership.bind_peer(1, 0, kGuest); // master=on: the guest's device is peer 0 on any server
  membership.bind_peer(2, 0, kGuest);
  membership.add_guest(kGuest, 1); // created on A: its word says 1 before it boots
  posix::TcpListener listener;     // the host process's end of the remote path (127.0.0.1)
  const std::string base = "/tmp/ivmc-vm-link-" + std::to_string(::getpid());
  const std::string to_b = "unix:" + base + ".to-b", to_a = "unix:" + base + ".to-a";
  const std::vector<std::string> agent = {"link-send",
                                          "--policy",
                                          "on_demand",
                                          "--ring",
                                          "64K",
                                          "--slot-bytes",
                                          "256K",
                                          "--slots",
                                          "2",
                                          "--bytes",
                                          "64G",
                                          "--after",
                                          "16M",
                                          "--moves",
                                          "2",
                                          "--timeout",
                                          "120",
                                          "--host-word",
                                          std::to_string(kHostWord),
                                          "--peer-host",
                                          "1",
                                          "--session",
                                          "77",
                                          "--remote",
                                          "10.0.2.2:" + std::to_string(listener.port())};
  const kvm::GuestNic nic{0, 0, "10.0.2.15/24", 1, true}; // user networking
  auto first = launch(&host_a, {"link-a", agent, false, nic, true, base + "-a.qmp", ""});
  REQUIRE(first->wait_for_console("IVMC-INFO link started", kBootBudget));

  // The host process joins after the guest (a master=on device must be the first peer).
  std::vector<posix::PathChange> changes;
  posix::Report received;
  std::thread receiver([&] {
    auto platform = kvm::HostPlatform::connect(host_a.socket(), 10 * kSecond, kVectors);
    kvm::LinkReceiveOptions o;
    o.endpoint = endpoint(NotifyPolicy::on_demand);
    o.slots.slot_bytes = 256 * 1024;
    o.slots.count = 2;
    o.remote.session = 77;
    o.timeout = 120 * kSecond;
    received = kvm::link_receive(*platform, listener, o, &changes);
  });
  struct JoinOnExit {
    std::thread& t;
    ~JoinOnExit() {
      if (t.joinable()) t.join();
    }
  } join{receiver};
  REQUIRE(first->wait_for_console("IVMC-LINK path local", 60 * kSecond));
  std::this_thread::sleep_for(std::chrono::seconds(1)); // streaming through the channel

  auto on_b = launch(&host_b, {"link-b", agent, false, nic, true, base + "-b.qmp", to_b});
  auto qa = kvm::QmpClient::connect(base + "-a.qmp", 10 * kSecond);
  auto qb = kvm::QmpClient::connect(base + "-b.qmp", 10 * kSecond);
  Nanos arrived_b = 0, arrived_a = 0;
  migrate(qa, qb, to_b, [&](const kvm::QmpEvent& resumed) {
    membership.on_qmp_event(kGuest, 2, resumed);
    arrived_b = posix::MonotonicClock::read();
  });
  first->kill(); // its server A disconnect notice reaches the receiver's platform
  CHECK(membership.host_of(kGuest) == 2);
  REQUIRE(on_b->wait_for_console("IVMC-LINK path remote", 60 * kSecond));
  std::this_thread::sleep_for(std::chrono::seconds(1)); // streaming over TCP

  membership.bind_peer(1, 0, kGuest); // its device on A left with the first move; it returns
  auto back = launch(&host_a, {"link-back", agent, false, nic, true, base + "-a2.qmp", to_a});
  auto qa2 = kvm::QmpClient::connect(base + "-a2.qmp", 10 * kSecond);
  migrate(qb, qa2, to_a, [&](const kvm::QmpEvent& resumed) {
    membership.on_qmp_event(kGuest, 1, resumed);
    arrived_a = posix::MonotonicClock::read();
  });
  on_b->kill(); // B's device leaves after the move back: not a shutdown
  std::this_thread::sleep_for(std::chrono::milliseconds(200)); // the server's notice
  CHECK(membership.host_of(kGuest) == 1);

  const kvm::GuestOutcome end = back->wait();
  receiver.join();
  // The guest powered off on A: the server's notice is its shutdown.
  for (int i = 0; i < 100 && membership.host_of(kGuest) != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(membership.host_of(kGuest) == 0);
  const posix::ReportFields r = result_of(end);
  INFO(end.describe());
  INFO(received.line());
  CHECK(r.at("moves") == "2");
  CHECK(r.at("hosts") == "1,2,1");
  CHECK(std::stoull(r.at("to_remote")) >= 1);
  CHECK(std::stoull(r.at("to_local")) >= 2);    // at the start and after the return
  CHECK(std::stoull(r.at("connections")) >= 3); // from A, from B, from A again
  REQUIRE(received.ok);
  CHECK(received.bytes == std::stoull(r.at("bytes")));
  CHECK(received.checksum == posix::expected_checksum(received.bytes));
  CHECK(hex16(received.checksum) == r.at("checksum"));
  // The receiver followed: local, remote after the first move, local after the return.
  std::vector<PathKind> path;
  for (const posix::PathChange& c : changes) path.push_back(c.to);
  REQUIRE(path.size() >= 3);
  CHECK(path.front() == PathKind::local);
  const auto away = std::find_if(changes.begin(), changes.end(),
                                 [&](const posix::PathChange& c) { return c.when > arrived_b; });
  REQUIRE(away != changes.end());
  CHECK(away->to == PathKind::remote);
  const auto home = std::find_if(changes.begin(), changes.end(),
                                 [&](const posix::PathChange& c) { return c.when > arrived_a; });
  REQUIRE(home != changes.end());
  CHECK(home->to == PathKind::local);
  CHECK(changes.back().to == PathKind::local);

  figure("link switch local -> remote: destination RESUME to the receiver's first TCP frame",
         (away->when - arrived_b) / 1e6, "ms");
  figure("link switch remote -> local: destination RESUME to the receiver's first channel frame",
         (home->when - arrived_a) / 1e6, "ms");
  figure("link: frames re-sent from the guest's copy of the region", std::stod(r.at("resent")),
         "frames");
  // The guest's own race windows: from QEMU's RESUME to its host word being written.
  std::vector<Nanos> windows;
  for (const NotificationRecord& rec : membership.records()) {
    if (rec.subject == kGuest && rec.observer == kGuest && rec.kind == ChangeKind::migration_in) {
      REQUIRE(rec.t_notified != kNever);
      CHECK(rec.t_notified >= rec.t_event);
      windows.push_back(rec.t_notified - rec.t_event);
    }
  }
  REQUIRE(windows.size() == 2);
  const auto arrivals = membership.arrivals();
  REQUIRE(arrivals.size() == 2);
  CHECK(arrivals[0].host == 2);
  CHECK(arrivals[1].host == 1);
  for (const auto& a : arrivals) CHECK(a.published >= a.resumed);
  figure("race window A -> B: QEMU RESUME to the guest's host word written",
         (arrivals[0].published - arrivals[0].resumed) / 1e6, "ms");
  figure("race window B -> A: QEMU RESUME to the guest's host word written",
         (arrivals[1].published - arrivals[1].resumed) / 1e6, "ms");
  figure("link: bytes streamed across both moves", received.bytes / 1048576.0, "MiB");
}
