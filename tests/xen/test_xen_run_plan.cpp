// The xen backend's plan (ivmc/xen/xen_plan.hpp): what dom0 is told to run for a scenario, and
// what XenBackend::check refuses, at its file:line, before a minute of booting. Runs anywhere
// (no Xen, no QEMU).
#include "ivmc/xen/xen_backend.hpp"
#include "ivmc/xen/xen_migration_run.hpp"
#include "ivmc/xen/xen_plan.hpp"

#include "ivmc/experiment/load.hpp"

#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

using namespace ivmc;

namespace {

std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) out.push_back(line);
  return out;
}

experiment::Scenario pair_scenario() {
  return experiment::load_scenario(IVMC_SOURCE_DIR "/scenarios/examples/xen_pair.toml");
}

} // namespace

TEST_CASE("the xen plan puts co-resident VMs on a ring and the others on the network",
          "[xen][plan]") {
  xen::XenRunOptions o;
  o.stream_bytes = 1000000;
  o.rr_count = 77;
  const std::string plan = xen::xen_plan(pair_scenario(), o);
  const auto vms = lines_starting(plan, "vm ");
  REQUIRE(vms.size() == 3);
  CHECK(vms[0] == "vm a 10.0.1.2");
  CHECK(vms[2] == "vm c 10.0.3.2");
  const auto work = lines_starting(plan, "work ");
  REQUIRE(work.size() == 4);
  CHECK(work[0] == "work stream ring a b message=4096 policy=on_demand ring=262144 bytes=1000000");
  CHECK(work[1] == "work stream net a c message=4096 bytes=1000000");
  CHECK(work[2] == "work rr ring a b message=64 policy=on_demand ring=262144 count=77");
  CHECK(work[3] == "work rr net a c message=64 count=77");
}

TEST_CASE("the xen plan sends every pair over the network when the channel is off", "[xen][plan]") {
  experiment::Scenario s = pair_scenario();
  s.channel.enabled = false;
  for (const auto& line : lines_starting(xen::xen_plan(s, {}), "work "))
    CHECK(line.find(" net ") != std::string::npos);
}

TEST_CASE("the xen plan refuses what one Xen machine cannot run, naming it", "[xen][plan]") {
  experiment::Scenario s = pair_scenario();
  SECTION("a ring larger than a domU may grant") {
    s.channel.ring_kib = 4096;
    CHECK_THROWS_WITH(xen::xen_plan(s, {}),
                      Catch::Contains("channel.ring_kib") && Catch::Contains("4096 KiB rings"));
  }
  SECTION("a message larger than the ring") {
    s.channel.ring_kib = 64;
    s.workloads[0].message_bytes = 65536;
    CHECK_THROWS_WITH(xen::xen_plan(s, {}),
                      Catch::Contains("workload 0 (a -> b)") && Catch::Contains("do not fit"));
  }
  SECTION("more domUs than the machine holds") {
    for (int i = 0; i < 8; ++i) {
      const std::string name = "x" + std::to_string(i);
      s.vms.push_back({name, 0});
      experiment::WorkloadConfig w = s.workloads[0];
      w.to = name;
      s.workloads.push_back(w);
    }
    CHECK_THROWS_WITH(xen::xen_plan(s, {}), Catch::Contains("11 VMs"));
  }
  SECTION("events it does not play") {
    s.events.emplace_back();
    xen::XenBackend backend({});
    CHECK_THROWS_WITH(backend.run(s, 1), Catch::Contains("--ignore-events"));
  }
}

TEST_CASE("xen check names what it cannot play at its file:line", "[xen][plan]") {
  const auto s = experiment::parse_scenario(R"(name = "x"
duration_s = 2
[channel]
ring_kib = 4096
[[vm]]
name = "a"
host = 0
[[vm]]
name = "b"
host = 0
[[workload]]
from = "a"
to = "b"
message_bytes = 2000000
[[event]]
kind = "shutdown"
at_s = 1
vm = "b"
)",
                                            "x.toml");
  xen::XenRunOptions o;
  const auto issues = xen::XenBackend(o).check(s);
  std::string all;
  for (const auto& i : issues) all += i.where + ": " + i.what + "\n";
  INFO(all);
  REQUIRE(issues.size() == 3);
  CHECK(issues[0].where == "x.toml:4");
  CHECK(issues[0].what.rfind("channel.ring_kib: 4096 KiB rings", 0) == 0);
  CHECK(issues[1].where == "x.toml:14");
  CHECK(issues[1].what.rfind("workload[0].message_bytes: 2000000 B", 0) == 0);
  CHECK(issues[2].where == "x.toml:15");
  CHECK(issues[2].what.rfind("event[0]: the xen backend plays migrate events only, not shutdown",
                             0) == 0);

  o.ignore_events = true;
  CHECK(xen::XenBackend(o).check(s).size() == 2);
  CHECK(xen::XenBackend(o).check(pair_scenario()).empty());
}

TEST_CASE("xen plays a scenario's migrations as save/restore: its plan lines", "[xen][plan]") {
  const auto s =
      experiment::load_scenario(IVMC_SOURCE_DIR "/scenarios/examples/xen_migration.toml");
  xen::XenRunOptions o;
  CHECK(xen::XenBackend(o).check(s).empty());
  const std::string plan = xen::xen_plan(s, o);
  CHECK(lines_starting(plan, "vm ").size() == 2);
  CHECK(lines_starting(plan, "work ").empty()); // the follow line replaces the workload
  CHECK(lines_starting(plan, "host a 0").size() == 1);
  CHECK(lines_starting(plan, "host b 0").size() == 1);
  const auto follow = lines_starting(plan, "follow a b ");
  REQUIRE(follow.size() == 1);
  CHECK(follow[0].find("duration_ms=14000") != std::string::npos);
  CHECK(follow[0].find("ring=65536") != std::string::npos);
  CHECK(follow[0].find("race=resolution") != std::string::npos);
  const auto moves = lines_starting(plan, "migrate a ");
  REQUIRE(moves.size() == 2);
  CHECK(moves[0] == "migrate a 1 at_ms=4000");
  CHECK(moves[1] == "migrate a 0 at_ms=9000");
  CHECK(lines_starting(plan, "membership scan period_ms=2000").size() == 1);
  experiment::Scenario w = s;
  w.membership.detection = experiment::Detection::watch;
  CHECK(lines_starting(xen::xen_plan(w, o), "membership watch ").size() == 1);
  o.ignore_events = true; // the workload alone, with the initial placement
  CHECK(lines_starting(xen::xen_plan(s, o), "work stream ring a b").size() == 1);
}

TEST_CASE("xen refuses the migrations it cannot play, each with its reason", "[xen][plan]") {
  auto s = experiment::load_scenario(IVMC_SOURCE_DIR "/scenarios/examples/xen_migration.toml");
  s.membership.detection = experiment::Detection::static_list;
  s.membership.race = ivmc::RacePolicy::none;
  s.workloads[0].rate_per_s = 100;
  s.events[1].at_s = 5; // 1 s after the first move
  s.channel.trust = experiment::Trust::list;
  const auto issues = xen::XenBackend(xen::XenRunOptions{}).check(s);
  std::string all;
  for (const auto& i : issues) all += i.where + ": " + i.what + "\n";
  INFO(all);
  auto says = [&](const std::string& text) { return all.find(text) != std::string::npos; };
  CHECK(issues.size() == 5);
  CHECK(says("event[1]: at 5 s: the xen backend needs 4 s between"));
  CHECK(says("workload[0].rate_per_s: with migrations the xen backend streams as fast"));
  CHECK(says("membership.detection: static: a restored domain has a new domain id"));
  CHECK(says("membership.race: race = none loses messages"));
  CHECK(says("channel.trust: with migrations the xen backend plays trust = open only"));
}

TEST_CASE("xen reads a migration run's results from dom0's console", "[xen][plan]") {
  const auto s =
      experiment::load_scenario(IVMC_SOURCE_DIR "/scenarios/examples/xen_migration.toml");
  std::string race; // Table IV as the sender reports it: one pending-data operation while
                    // it had no view after moving away
  for (int op = 0; op < 3; ++op)
    for (int k = 0; k < 4; ++k)
      for (const char* what : {"ops", "errors", "deferred", "bytes"})
        race += " race_" + std::to_string(op) + "_" + std::to_string(k) + "_" + what + "=" +
                (op == 1 && k == 2 && std::string(what) == "ops" ? "1" : "0");
  const std::string sender =
      "IVMC-RESULT mode=link-send ok=1 bytes=8192 messages=2 checksum=00000000000000aa "
      "ns=1000000000 frames_local=1 frames_remote=1 channels_opened=2 sent_local=1 "
      "sent_remote=1 to_local=2 to_remote=1 fallbacks=0 resent=1 deferred=0 probes=0 "
      "sends_in_window=1" +
      race + " w=0 side=from vm=a\n";
  const std::string receiver =
      "IVMC-RESULT mode=link-recv ok=1 bytes=8192 messages=2 checksum=00000000000000aa "
      "ns=2000000000 drained_after_break=1 lost=0 w=0 side=to vm=b\n";
  const std::string moves =
      "  IVMC-MOVE k=1 vm=a from_host=0 to_host=1 at_s=4.0 save_ms=800 restore_ms=1100 "
      "unpause_ms=100 old_domid=1 new_domid=3 kind=migration_out resumed_ns=5\r\n"
      "IVMC-MOVE k=2 vm=a from_host=1 to_host=0 at_s=9.0 save_ms=900 restore_ms=1000 "
      "unpause_ms=100 old_domid=3 new_domid=4 kind=migration_in resumed_ns=6\n"
      "IVMC-SERVICE learning=scan period_ms=2000 directory_reads=64 view_writes=5\n";
  const auto r =
      xen::xen_migration_results(s, moves + sender + receiver, std::chrono::steady_clock::now());
  auto metric = [&](const std::string& name) {
    for (const auto& m : r.metrics)
      if (m.name == name) return m.value;
    FAIL("no metric " << name);
    return 0.0;
  };
  CHECK(metric("migrations") == 2);
  CHECK(metric("migration_s_mean") == Approx(2.0));
  CHECK(metric("race_exposure") == Approx(0.5));
  CHECK(metric("race_operations") == 1);
  CHECK(metric("race_pending_data_migration_out") == 1);
  CHECK(metric("membership_probes") == 64);
  CHECK(metric("pending_bytes") == 4096);
  CHECK(metric("recovered_bytes") == 4096);
  CHECK(metric("lost_bytes") == 0);
  CHECK(metric("w0_local_share") == 0.5);
  // A receiver that saw other bytes than were sent fails the run.
  std::string bad = receiver;
  bad.replace(bad.find("00aa"), 4, "00ab");
  CHECK_THROWS(
      xen::xen_migration_results(s, moves + sender + bad, std::chrono::steady_clock::now()));
  CHECK_THROWS(xen::xen_migration_results(s, sender + receiver, std::chrono::steady_clock::now()));
}
