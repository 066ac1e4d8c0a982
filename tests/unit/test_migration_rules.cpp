// The one refusal rule set of the guest backends' migration runs (guest_results'
// migration_plan.hpp and migration_run_rules.hpp) under both backends' parameters: kvm's
// (kvm::migration_rules) and xen's (xen::xen_migration_rules). The same scenario gets the same
// plan from both and the same refusals but for what the parameters change (the gap's reason,
// the settle time, generators, the backend's name). No guest here.
#include "ivmc/guest_results/migration_plan.hpp"
#include "ivmc/guest_results/migration_run_rules.hpp"
#include "ivmc/kvm/kvm_migration_rules.hpp"
#include "ivmc/xen/xen_migration_run.hpp"

#include "ivmc/experiment/load.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace ivmc;

namespace {

const char* const kExample = IVMC_SOURCE_DIR "/scenarios/examples/xen_migration.toml";

std::string dump(const std::vector<experiment::ScenarioIssue>& issues) {
  std::string out;
  for (const auto& i : issues) out += i.where + ": " + i.what + "\n";
  return out;
}

// The issues that say `text` ("key: reason": issue_at puts the key in `what` when the file
// set it, else in `where`).
std::size_t count(const std::vector<experiment::ScenarioIssue>& issues, const std::string& text) {
  std::size_t n = 0;
  for (const auto& i : issues) n += (i.where + ": " + i.what).find(text) != std::string::npos;
  return n;
}

} // namespace

TEST_CASE("kvm and xen plan the same scripted migrations through one rule set",
          "[guest_results][migration]") {
  const auto s = experiment::load_scenario(kExample);
  const auto& kvm = kvm::migration_rules();
  const auto& xen = xen::xen_migration_rules();
  CHECK(kvm.backend == "kvm");
  CHECK(xen.backend == "xen");
  for (const auto* rules : {&kvm, &xen}) {
    INFO(rules->backend);
    const auto plan = guest_results::plan_migrations(s, *rules);
    INFO(dump(plan.issues));
    CHECK(plan.issues.empty());
    CHECK(plan.vm == "a");
    REQUIRE(plan.migrations.size() == 2);
    CHECK(plan.migrations[0].at_s == 4.0);
    CHECK(plan.migrations[0].host == 1);
    CHECK(plan.migrations[0].key == "event[0]");
    CHECK_FALSE(plan.migrations[0].drawn);
    CHECK(plan.migrations[1].at_s == 9.0);
    CHECK(plan.migrations[1].host == 0);
    CHECK(guest_results::migration_run_issues(s, *rules).empty());
  }
}

TEST_CASE("the shared rule set refuses by each backend's parameters, naming it",
          "[guest_results][migration]") {
  auto s = experiment::load_scenario(kExample);
  s.events[1].at_s = 6.5; // 2.5 s after the first: closer than both backends' 4 s
  s.duration_s = 8.8;     // 2.3 s after the last: kvm's 2 s pass, xen's 3 s do not
  s.workloads[0].rate_per_s = 10;
  const auto k = guest_results::migration_run_issues(s, kvm::migration_rules());
  const auto x = guest_results::migration_run_issues(s, xen::xen_migration_rules());
  INFO("kvm:\n" << dump(k) << "xen:\n" << dump(x));
  CHECK(count(k, "event[1]: at 6.5 s: the kvm backend needs 4 s between the start and a "
                 "migration and between migrations (a TCG guest's migration takes about a "
                 "second)") == 1);
  CHECK(count(x,
              "event[1]: at 6.5 s: the xen backend needs 4 s between the start and a "
              "migration and between migrations (xl save + xl restore under TCG take 2-3 s)") == 1);
  CHECK(count(k, "duration_s: ") == 0);
  CHECK(count(x, "duration_s: the stream must run 3 s past the last migration (6.5 s) on the "
                 "xen backend") == 1);
  CHECK(count(k, "workload[0].rate_per_s: with migrations the kvm backend streams as fast") == 1);
  CHECK(count(x, "workload[0].rate_per_s: with migrations the xen backend streams as fast") == 1);
  CHECK(k.size() == 2);
  CHECK(x.size() == 3);

  // Another VM's migration: one VM moves, the stream's sender.
  s = experiment::load_scenario(kExample);
  s.events[1].vm = s.workloads[0].to; // b, the receiver
  for (const auto* rules : {&kvm::migration_rules(), &xen::xen_migration_rules()}) {
    const auto issues = guest_results::plan_migrations(s, *rules).issues;
    INFO(dump(issues));
    CHECK(count(issues, "event[1]: at 9 s: b migrates; the " + rules->backend +
                            " backend plays migrations of one VM only (a, the stream's sender)") ==
          1);
  }

  // Trust: xen says why.
  s = experiment::load_scenario(kExample);
  s.channel.trust = experiment::Trust::list;
  CHECK(count(guest_results::migration_run_issues(s, kvm::migration_rules()),
              "channel.trust: with migrations the kvm backend plays trust = open only") == 1);
  CHECK(count(guest_results::migration_run_issues(s, xen::xen_migration_rules()),
              "channel.trust: with migrations the xen backend plays trust = open only (dom0's "
              "trust list is the scenario's VMs)") == 1);
}

TEST_CASE("a generator's draws: kvm plays them, xen refuses the generator",
          "[guest_results][migration][generator]") {
  auto s =
      experiment::load_scenario(IVMC_SOURCE_DIR "/scenarios/examples/kvm_poisson_migration.toml");
  const auto k = guest_results::plan_migrations(s, kvm::migration_rules());
  INFO(dump(k.issues));
  CHECK(k.issues.empty());
  CHECK(k.migrations.size() == 3); // seed 30: 5.7, 11.1 and 15.2 s (the example says so)
  for (const auto& m : k.migrations) CHECK(m.drawn);
  const auto x = guest_results::plan_migrations(s, xen::xen_migration_rules());
  INFO(dump(x.issues));
  REQUIRE(x.issues.size() == 1);
  CHECK(x.issues[0].what.rfind("generator[0]: the xen backend plays no [[generator]] yet", 0) == 0);
  CHECK(x.migrations.empty());
}
