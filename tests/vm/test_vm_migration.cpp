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

#include "ivmc/kvm/qmp.hpp"

#include <chrono>
#include <thread>

using namespace ivmc;
using namespace ivmc::vmtest;

TEST_CASE("a guest live-migrates to another host while streaming (QMP)", "[vm][migration]") {
  Host host_a("mig-a"), host_b("mig-b");
  constexpr std::size_t kHostWord = (1u << 20) - 4096; // the region's last page
  REQUIRE(Channel::area_bytes(kRing, kRing) <= kHostWord);
  host_a.set_host_word(kHostWord, 1);

  const std::string base = "/tmp/ivmc-vm-mig-" + std::to_string(::getpid());
  const std::string qmp_a = base + "-a.qmp", qmp_b = base + "-b.qmp";
  const std::string uri = "unix:" + base + ".migrate";
  const std::vector<std::string> agent = {"loop",  "--policy", "on_demand", "--bytes",
                                          "64G",   "--after",  "32M",       "--timeout",
                                          "120",   "--host-word", std::to_string(kHostWord)};
  auto source = launch(&host_a, {"mig-source", agent, false, {}, true, qmp_a, ""});
  auto dest = launch(&host_b, {"mig-dest", agent, false, {}, true, qmp_b, uri});

  REQUIRE(source->wait_for_console("IVMC-INFO loop started", kBootBudget));
  auto qa = kvm::QmpClient::connect(qmp_a, 10 * kSecond);
  auto qb = kvm::QmpClient::connect(qmp_b, 10 * kSecond);
  const std::string events = R"({"capabilities": [{"capability": "events", "state": true}]})";
  qa.execute("migrate-set-capabilities", events, 10 * kSecond);
  qb.execute("migrate-set-capabilities", events, 10 * kSecond);
  std::this_thread::sleep_for(std::chrono::seconds(1)); // the stream is under way

  const Nanos t0 = kvm::MonotonicClock::read();
  qa.execute("migrate", R"({"uri": ")" + uri + R"("})", 10 * kSecond);
  const auto completed = qa.wait_event("MIGRATION", "completed", 60 * kSecond);
  INFO("source events: " << qa.history().size() << "; last: "
                         << (qa.history().empty() ? "" : qa.history().back().json));
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
  const kvm::ReportFields r = result_of(out);
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
  CHECK(r.at("checksum") == hex16(kvm::expected_checksum(bytes)));

  figure("live migration 256 MiB guest: total (query-migrate)", total_ms, "ms");
  figure("live migration: downtime (query-migrate)", downtime_ms, "ms");
  figure("live migration: source STOP -> destination RESUME",
         (resumed->timestamp - stopped->timestamp) * 1e3, "ms");
  figure("live migration: migrate command -> MIGRATION completed (wall)", wall / 1e6, "ms");
  figure("live migration: longest gap between messages in the guest",
         std::stoll(r.at("max_gap_ns")) / 1e6, "ms");
}
