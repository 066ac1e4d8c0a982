// Cost profiles (sim/include/ivmc/sim/cost_profile.hpp): the built-in ones load, the papers'
// profile is exactly the model's defaults, hostile profile files are refused at their file:line,
// and a scenario that names a profile runs with it (in a child: one SimGrid engine per process).
#include "ivmc/experiment/child_run.hpp"
#include "ivmc/experiment/load.hpp"
#include "ivmc/experiment/overrides.hpp"
#include "ivmc/sim/cost_profile.hpp"
#include "ivmc/sim/sim_backend.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

using namespace ivmc;

namespace {

// A valid profile, with `costs` as its [costs] table's lines.
std::string profile_text(const std::string& costs) {
  return "name = \"t\"\n"               // 1
         "[provenance]\n"               // 2
         "machine = \"m\"\n"            // 3
         "cpu = \"c\"\n"                // 4
         "date = \"2026-12-07\"\n"      // 5
         "ivmc_commit = \"abc\"\n"      // 6
         "backend = \"host\"\n"         // 7
         "method = \"by hand\"\n"       // 8
         "residual_median = 0.1\n"      // 9
         "residual_max = 0.2\n"         // 10
         "[[provenance.measurement]]\n" // 11
         "name = \"stream\"\n"          // 12
         "unit = \"Mb/s\"\n"            // 13
         "measured = 10\n"              // 14
         "model = 11\n"                 // 15
         "[costs]\n" +                  // 16
         costs;                         // 17...
}

std::string problems_of(const std::string& text) {
  try {
    sim::parse_cost_profile(text, "p.toml");
  } catch (const sim::ProfileError& e) {
    return e.what();
  }
  return "";
}

double metric(const experiment::RunResult& r, const std::string& name) {
  for (const auto& m : r.metrics)
    if (m.name == name) return m.value;
  FAIL("no metric " << name);
  return 0;
}

} // namespace

TEST_CASE("the papers' profile is the default and is exactly the model's defaults", "[sim]") {
  const auto names = sim::builtin_cost_profiles();
  REQUIRE(std::find(names.begin(), names.end(), std::string(sim::kDefaultCostProfile)) !=
          names.end());
  REQUIRE(std::find(names.begin(), names.end(), "host") != names.end());
  const auto papers = sim::load_cost_profile("");
  CHECK(papers.name == sim::kDefaultCostProfile);
  const sim::CostModel defaults;
  for (const auto& e : sim::CostModel::entries()) {
    INFO(e.name);
    CHECK(papers.costs.*(e.field) == defaults.*(e.field));
  }
  CHECK(papers.measurements.size() >= 8);
}

TEST_CASE("the built-in host profile loads with its provenance and the loopback path", "[sim]") {
  const auto host = sim::load_cost_profile("host");
  CHECK(host.backend == "host");
  CHECK_FALSE(host.cpu.empty());
  CHECK_FALSE(host.ivmc_commit.empty());
  CHECK(host.measurements.size() >= 10);
  CHECK(host.costs.remote_loopback == 1);
  CHECK(host.costs.poll_cpu_share > 0);
  CHECK(host.costs.poll_cpu_share <= 1);
}

TEST_CASE("hostile cost profiles are refused, every problem at its file:line", "[sim]") {
  CHECK(problems_of(profile_text("syscall_ns = 100\n")).empty());
  // an unknown parameter, with the known ones listed
  auto p = problems_of(profile_text("syscall_ns = 100\nsyscal_ns = 3\n"));
  CHECK(p.find("p.toml:18") != std::string::npos);
  CHECK(p.find("unknown cost parameter") != std::string::npos);
  CHECK(p.find("syscall_ns") != std::string::npos);
  // negative, not finite, of the wrong type: each at its line, all reported at once
  p = problems_of(profile_text("irq_ns = -1\nshm_doorbell_ns = inf\nsyscall_ns = \"fast\"\n"
                               "copy_ns_per_byte = nan\n"));
  CHECK(p.find("p.toml:17: costs.irq_ns") != std::string::npos);
  CHECK(p.find("p.toml:18: costs.shm_doorbell_ns") != std::string::npos);
  CHECK(p.find("p.toml:19: costs.syscall_ns: expected a number; got a string") !=
        std::string::npos);
  CHECK(p.find("p.toml:20: costs.copy_ns_per_byte") != std::string::npos);
  // out of range
  CHECK(problems_of(profile_text("poll_cpu_share = 1.5\n")).find("p.toml:17") != std::string::npos);
  CHECK(problems_of(profile_text("remote_loopback = 2\n")).find("p.toml:17") != std::string::npos);
  // missing provenance: the whole table, or one field of it
  p = problems_of("name = \"t\"\n[costs]\nsyscall_ns = 1\n");
  CHECK(p.find("p.toml:1: provenance: missing") != std::string::npos);
  std::string no_cpu = profile_text("");
  no_cpu.replace(no_cpu.find("cpu = \"c\"\n"), 10, "cpu = 4\n");
  CHECK(problems_of(no_cpu).find("p.toml:4: provenance.cpu: expected a string") !=
        std::string::npos);
  std::string no_measurements = profile_text("");
  no_measurements = no_measurements.substr(0, no_measurements.find("[[provenance")) + "[costs]\n";
  CHECK(problems_of(no_measurements).find("provenance.measurement") != std::string::npos);
  // a measurement of zero cannot be a fitted figure; an unknown key anywhere is refused
  std::string zero = profile_text("");
  zero.replace(zero.find("measured = 10"), 13, "measured = 0");
  CHECK(problems_of(zero).find("p.toml:14: provenance.measurement[0].measured") !=
        std::string::npos);
  CHECK(problems_of(profile_text("") + "[extra]\n").find("extra: unknown key") !=
        std::string::npos);
  // broken TOML
  CHECK(problems_of("name = \n").find("p.toml:1: invalid TOML") != std::string::npos);
  // names and files
  CHECK_THROWS_WITH(sim::load_cost_profile("nosuch"),
                    Catch::Contains("no built-in cost profile named \"nosuch\"") &&
                        Catch::Contains("host"));
  CHECK_THROWS_WITH(sim::load_cost_profile("/nonexistent/p.toml"),
                    Catch::Contains("/nonexistent/p.toml"));
}

TEST_CASE("a scenario names a profile: a file next to it, checked before the run", "[sim]") {
  char dir[] = "/tmp/ivmc-profile-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string d = dir;
  std::ofstream(d + "/bad.toml") << profile_text("irq_ns = -3\n");
  std::ofstream(d + "/s.toml") << "name = \"s\"\n[costs]\nprofile = \"bad.toml\"\n";
  const auto s = experiment::load_scenario(d + "/s.toml");
  CHECK(s.cost_profile == d + "/bad.toml"); // relative to the scenario's folder
  const auto issues = sim::SimBackend().check(s);
  REQUIRE(issues.size() == 1);
  CHECK(issues[0].where == d + "/bad.toml:17");
  CHECK(issues[0].what.find("costs.irq_ns") != std::string::npos);

  auto unknown =
      experiment::parse_scenario("[costs]\nprofile = \"nosuch\"\nirq_nz = 1\n", "x.toml");
  const auto two = sim::SimBackend().check(unknown);
  REQUIRE(two.size() == 2);
  CHECK(two[0].where == "x.toml:2");
  CHECK(two[1].where == "x.toml:3");
  CHECK_THROWS_WITH(experiment::parse_scenario("[costs]\nprofile = 3\n", "y.toml"),
                    Catch::Contains("y.toml:2") && Catch::Contains("costs.profile"));
  std::remove((d + "/bad.toml").c_str());
  std::remove((d + "/s.toml").c_str());
  ::rmdir(dir);
}

TEST_CASE("a scenario with costs.profile runs with it, and [costs] still override", "[sim]") {
  // Two VMs on one host; the remote path (no channel) is where the profiles differ most: the
  // papers' Xen netfront through Dom0 against the host's loopback TCP.
  const std::string text = "name = \"p\"\nduration_s = 0.02\nwarmup_s = 0.002\n"
                           "[platform]\nhosts = 1\n[channel]\nenabled = false\n"
                           "[[vm]]\nname = \"a\"\nhost = 0\n[[vm]]\nname = \"b\"\nhost = 0\n"
                           "[[workload]]\nkind = \"tcp_rr\"\nfrom = \"a\"\nto = \"b\"\n"
                           "message_bytes = 64\n";
  auto run = [&](const std::vector<std::string>& sets) {
    auto s = experiment::parse_scenario(text, "p.toml");
    for (const auto& kv : sets) experiment::apply_override(s, kv);
    REQUIRE(sim::SimBackend().check(s).empty());
    return experiment::run_in_child([s] { return sim::SimBackend().run(s, 1); });
  };
  const double papers = metric(run({}), "w0_transactions_per_s");
  const double named_papers =
      metric(run({"costs.profile=xenloop-hpdc2008"}), "w0_transactions_per_s");
  const double host = metric(run({"costs.profile=host"}), "w0_transactions_per_s");
  const auto hp = sim::load_cost_profile("host").costs;
  // one round trip on loopback: each side's send and receive, the latency both ways, and the
  // receiver's wake-up cost (it slept)
  const double side = hp.syscall_ns + 64 * hp.copy_ns_per_byte + hp.tcp_per_packet_ns;
  const double rtt_ns = 2 * (2 * side + hp.loopback_latency_ns + hp.irq_ns);
  CHECK(named_papers == papers);
  CHECK(host != papers);
  CHECK(host == Approx(1e9 / rtt_ns).epsilon(0.02));
  // an override on top of the profile changes it where it acts
  const double slower = metric(run({"costs.profile=host", "costs.loopback_latency_ns=1000000"}),
                               "w0_transactions_per_s");
  CHECK(slower < host / 5);
}
