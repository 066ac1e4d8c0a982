// The table of backends (backends/table): the build's names, an unknown one refused naming the
// known ones; the simulator backend's contract (no process started here).
#include "ivmc/backends/table.hpp"
#include "ivmc/experiment/load.hpp"
#include "ivmc/experiment/overrides.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>

using namespace ivmc;

TEST_CASE("the table lists sim first, each name once", "[backends]") {
  const auto names = backends::backend_names();
  REQUIRE(!names.empty());
  CHECK(names.front() == "sim");
  for (const auto& n : names) CHECK(std::count(names.begin(), names.end(), n) == 1);
  for (const auto& n : names) {
    const auto b = backends::make_backend(n, {});
    REQUIRE(b);
    CHECK(b->name() == n);
    CHECK(b->default_jobs() >= 1);
  }
}

TEST_CASE("an unknown backend is refused, naming the ones this build has", "[backends]") {
  std::string what;
  try {
    backends::make_backend("qemu", {});
  } catch (const std::invalid_argument& e) {
    what = e.what();
  }
  INFO(what);
  CHECK(what.find("unknown backend 'qemu'") != std::string::npos);
  for (const auto& n : backends::backend_names()) CHECK(what.find(n) != std::string::npos);
  CHECK_THROWS_AS(backends::make_backend("", {}), std::invalid_argument);
  CHECK_THROWS_AS(backends::make_backend("SIM", {}), std::invalid_argument);
}

TEST_CASE("the sim backend plays every valid scenario, one run per CPU", "[backends]") {
  const auto sim = backends::make_backend("sim", {});
  auto s = experiment::load_scenario_argument("default");
  CHECK(sim->check(s).empty());
  CHECK(experiment::issues_on(*sim, s).empty());
  CHECK(sim->default_jobs() >= 1);
  // issues_on validates first: an invalid scenario is refused before check.
  experiment::apply_override(s, "channel.layer=4");
  const auto issues = experiment::issues_on(*sim, s);
  REQUIRE(issues.size() == 1);
  CHECK(issues[0].where == "channel.layer");
  CHECK(issues[0].what == "expected 1, 2 or 3; got 4");
}
