// `ivmc run --backend xen`'s plan (cli/xen_run.hpp): what dom0 is told to run for a scenario,
// and what is refused before a minute of booting. Runs anywhere (no Xen, no QEMU).
#include "xen_run.hpp"

#include "ivmc/sim/scenario.hpp"

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

sim::Scenario pair_scenario() {
  return sim::load_scenario(IVMC_SOURCE_DIR "/scenarios/examples/xen_pair.toml");
}

} // namespace

TEST_CASE("the xen plan puts co-resident VMs on a ring and the others on the network",
          "[xen][plan]") {
  cli::XenRunOptions o;
  o.stream_bytes = 1000000;
  o.rr_count = 77;
  const std::string plan = cli::xen_plan(pair_scenario(), o);
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
  sim::Scenario s = pair_scenario();
  s.channel.enabled = false;
  for (const auto& line : lines_starting(cli::xen_plan(s, {}), "work "))
    CHECK(line.find(" net ") != std::string::npos);
}

TEST_CASE("the xen plan refuses what one Xen machine cannot run, naming it", "[xen][plan]") {
  sim::Scenario s = pair_scenario();
  SECTION("a ring larger than a domU may grant") {
    s.channel.ring_kib = 4096;
    CHECK_THROWS_WITH(cli::xen_plan(s, {}), Catch::Contains("ring_kib = 4096"));
  }
  SECTION("a message larger than the ring") {
    s.channel.ring_kib = 64;
    s.workloads[0].message_bytes = 65536;
    CHECK_THROWS_WITH(cli::xen_plan(s, {}),
                      Catch::Contains("workload 0 (a -> b)") && Catch::Contains("do not fit"));
  }
  SECTION("more domUs than the machine holds") {
    for (int i = 0; i < 8; ++i) {
      const std::string name = "x" + std::to_string(i);
      s.vms.push_back({name, 0});
      sim::WorkloadConfig w = s.workloads[0];
      w.to = name;
      s.workloads.push_back(w);
    }
    CHECK_THROWS_WITH(cli::xen_plan(s, {}), Catch::Contains("11 VMs"));
  }
  SECTION("events it does not play") {
    s.events.emplace_back();
    CHECK_THROWS_WITH(cli::run_on_xen(s, {}), Catch::Contains("--ignore-events"));
  }
}
