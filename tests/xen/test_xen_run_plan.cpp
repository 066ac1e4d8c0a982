// The xen backend's plan (ivmc/xen/xen_plan.hpp): what dom0 is told to run for a scenario, and
// what XenBackend::check refuses, at its file:line, before a minute of booting. Runs anywhere
// (no Xen, no QEMU).
#include "ivmc/xen/xen_backend.hpp"
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
  CHECK(issues[2].what.rfind("event[0]: the xen backend plays no [[event]]", 0) == 0);

  o.ignore_events = true;
  CHECK(xen::XenBackend(o).check(s).size() == 2);
  CHECK(xen::XenBackend(o).check(pair_scenario()).empty());
}
