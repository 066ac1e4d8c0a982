// The kvm migration run's plan (guest_results' migration_plan.hpp with kvm's rules): a scenario's
// [[generator]] of migrations drawn from the run's seed as the simulator draws it (the simulator,
// run here in a child, moves the VM at the same times to the same hosts), and the draws the kvm run
// cannot play refused naming their time and seed. No QEMU here.
#include "ivmc/kvm/kvm_migration_rules.hpp"

#include "ivmc/backends/table.hpp"
#include "ivmc/experiment/child_run.hpp"
#include "ivmc/experiment/draws.hpp"
#include "ivmc/experiment/load.hpp"
#include "ivmc/experiment/membership.hpp"
#include "ivmc/experiment/overrides.hpp"

#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <string>
#include <utility>
#include <vector>

using namespace ivmc;

namespace {

const char* const kExample = IVMC_SOURCE_DIR "/scenarios/examples/kvm_poisson_migration.toml";

std::string dump(const std::vector<experiment::ScenarioIssue>& issues) {
  std::string out;
  for (const auto& i : issues) out += i.where + ": " + i.what + "\n";
  return out;
}

std::vector<experiment::ScenarioIssue> kvm_check(const experiment::Scenario& s) {
  return backends::make_backend("kvm", {})->check(s);
}

// The first draw of `s` (its seed) closer than the kvm gap to the start or to the migration
// played before it, or -1. A draw within the pre-copy of the one played before is skipped (the
// VM is still migrating: the simulator skips it), not played.
double first_close_draw(const experiment::Scenario& s) {
  experiment::Draws draws(s.seed);
  const double precopy = guest_results::precopy_s(s, "a");
  double last = 0;
  bool played = false;
  for (const auto& d : experiment::draw_generators(s, experiment::vm_ids(s), draws)) {
    if (played && d.at_s < last + precopy) continue;
    if (d.at_s < last + kvm::migration_rules().min_gap_s) return d.at_s;
    last = d.at_s;
    played = true;
  }
  return -1;
}

// True when every draw of `s` (its seed) is at least the kvm gap after the start and the one
// played before.
bool playable_gaps(const experiment::Scenario& s) {
  return first_close_draw(s) < 0;
}

// The simulator's run of `s` for `seed` (in a child, with changes.csv's records), and its
// migrations in time order.
std::pair<experiment::RunResult, std::vector<experiment::ChangeRecord>>
simulated_migrations(const experiment::Scenario& s, std::uint64_t seed) {
  experiment::RunResult sim =
      experiment::run_in_child([&] { return backends::make_backend("sim", {})->run(s, seed); });
  REQUIRE(sim.changes_recorded);
  std::vector<experiment::ChangeRecord> moves;
  for (const auto& c : sim.changes)
    if (c.kind == "migration") moves.push_back(c);
  return {std::move(sim), std::move(moves)};
}

} // namespace

TEST_CASE("kvm plays the Poisson migration example it documents, every draw of its seed",
          "[backends][kvm][generator]") {
  const auto s = experiment::load_scenario(kExample);
  INFO(dump(kvm_check(s)));
  CHECK(kvm_check(s).empty());
  const guest_results::MigrationPlan plan =
      guest_results::plan_migrations(s, kvm::migration_rules());
  CHECK(plan.vm == "a");
  CHECK(plan.issues.empty());
  // "the migrating VM moves between 2 hosts a few times": out, back, out...
  REQUIRE(plan.migrations.size() >= 2);
  experiment::Draws draws(s.seed);
  const auto drawn = experiment::draw_generators(s, experiment::vm_ids(s), draws);
  REQUIRE(drawn.size() == plan.migrations.size());
  for (std::size_t i = 0; i < drawn.size(); ++i) {
    CHECK(plan.migrations[i].at_s == drawn[i].at_s);
    CHECK(plan.migrations[i].drawn);
    CHECK(plan.migrations[i].key == "generator[0]");
    CHECK(plan.migrations[i].host == (i % 2 == 0 ? 1u : 0u));
  }
}

TEST_CASE("the kvm run's drawn migrations are the simulator's for the same seed",
          "[backends][kvm][generator]") {
  auto s = experiment::load_scenario(kExample);
  experiment::apply_override(s, "output.changes=true");
  // A slower stream keeps the simulation short; the draws do not depend on it.
  experiment::apply_override(s, "workload[0].rate_per_s=1000");
  // The example's seed, and the next playable one (another seed: other times).
  std::vector<std::uint64_t> seeds = {s.seed};
  for (std::uint64_t seed = s.seed + 1; seeds.size() < 2; ++seed) {
    s.seed = seed;
    if (playable_gaps(s) &&
        !guest_results::plan_migrations(s, kvm::migration_rules()).migrations.empty())
      seeds.push_back(seed);
  }
  std::vector<double> firsts;
  for (const std::uint64_t seed : seeds) {
    INFO("seed " << seed);
    s.seed = seed;
    const guest_results::MigrationPlan plan =
        guest_results::plan_migrations(s, kvm::migration_rules());
    REQUIRE(plan.issues.empty());
    const std::vector<experiment::ChangeRecord> moves = simulated_migrations(s, seed).second;
    REQUIRE(moves.size() == plan.migrations.size());
    for (std::size_t i = 0; i < moves.size(); ++i) {
      const guest_results::PlannedMigration& p = plan.migrations[i];
      INFO("migration " << i << " drawn at " << p.at_s << " s; simulated switch-over at "
                        << moves[i].time_s << " s");
      CHECK(moves[i].vm == "a");
      CHECK(moves[i].to_host == static_cast<std::int64_t>(p.host));
      // The simulated migration starts at the draw and switches over before the next one.
      CHECK(moves[i].time_s >= p.at_s);
      CHECK(moves[i].time_s < p.at_s + kvm::migration_rules().min_gap_s);
    }
    firsts.push_back(plan.migrations.front().at_s);
  }
  CHECK(firsts[0] != firsts[1]);
}

TEST_CASE("kvm refuses the draws it cannot play, naming their time and seed",
          "[backends][kvm][generator]") {
  auto s = experiment::load_scenario(kExample);
  // A seed whose draws come closer than the run's minimum gap (likely at this rate).
  std::uint64_t seed = 1;
  for (s.seed = seed; playable_gaps(s); s.seed = ++seed) {
  }
  const double close = first_close_draw(s);
  REQUIRE(close >= 0);
  const auto issues = kvm_check(s);
  INFO(dump(issues));
  const std::string what =
      fmt::format("generator[0]: the draw at {:.3f} s (seed {}): the kvm backend needs 4 s between",
                  close, seed);
  bool named = false;
  for (const auto& i : issues) {
    if (i.what.rfind(what, 0) != 0) continue;
    named = true;
    INFO(i.where);
    CHECK(i.where == fmt::format("{}:{}", kExample, s.generators[0].line)); // [[generator]]
    CHECK(i.what.find("--ignore-events") != std::string::npos);
    CHECK(i.per_seed); // another seed may play: a sweep makes the others
  }
  CHECK(named);
  // Nothing else: the other draws and keys are playable.
  for (const auto& i : issues) CHECK(i.what.rfind("generator[0]: the draw at ", 0) == 0);

  // A generator over every VM draws b too: the run moves only the stream's sender.
  s = experiment::load_scenario(kExample);
  s.generators[0].vms.clear();
  s.generators[0].rate_per_s = 2;
  const guest_results::MigrationPlan all =
      guest_results::plan_migrations(s, kvm::migration_rules());
  CHECK(all.vm == "a");
  bool other_vm = false;
  for (const auto& i : all.issues)
    other_vm = other_vm || i.what.find(": b migrates; the kvm backend plays migrations of one VM "
                                       "only (a, the stream's sender)") != std::string::npos;
  CHECK(other_vm);

  // Other kinds of generator are refused whatever they draw.
  s = experiment::load_scenario(kExample);
  s.generators[0].kind = experiment::EventKind::shutdown;
  const auto shutdown = kvm_check(s);
  INFO(dump(shutdown));
  REQUIRE(shutdown.size() == 1);
  CHECK(shutdown[0].what.rfind(
            "generator[0]: the kvm backend's generators draw migrations only, not shutdown", 0) ==
        0);

  // A draw too close to the end: the stream must settle after the last migration.
  s = experiment::load_scenario(kExample);
  s.generators[0].stop_s = -1; // up to duration_s
  bool late = false;
  for (s.seed = 1; s.seed < 200 && !late; ++s.seed) {
    const guest_results::MigrationPlan p =
        guest_results::plan_migrations(s, kvm::migration_rules());
    if (p.migrations.empty() ||
        p.migrations.back().at_s <= s.duration_s - kvm::migration_rules().settle_s)
      continue;
    late = true;
    const auto late_issues = kvm_check(s);
    INFO(dump(late_issues));
    bool named_end = false;
    for (const auto& i : late_issues)
      named_end = named_end || i.what.rfind("duration_s: the stream must run 2 s past the last "
                                            "migration",
                                            0) == 0;
    CHECK(named_end);
  }
  CHECK(late);
}

TEST_CASE("a draw while the VM is still migrating is skipped, as the simulator skips it",
          "[backends][kvm][generator]") {
  auto s = experiment::load_scenario(kExample);
  experiment::apply_override(s, "output.changes=true");
  experiment::apply_override(s, "workload[0].rate_per_s=1000"); // a short simulation
  // 2 GiB at 10 Gbit/s: 1.72 s of pre-copy at least, so some seed draws inside one.
  experiment::apply_override(s, "vm[0].ram_mib=2048");
  const double precopy = guest_results::precopy_s(s, "a");
  CHECK(precopy == Approx(2048.0 * 1048576 * 8 / 10e9));
  guest_results::MigrationPlan plan;
  for (s.seed = 1; s.seed < 2000; ++s.seed) {
    plan = guest_results::plan_migrations(s, kvm::migration_rules());
    if (!plan.skipped.empty() && plan.issues.empty()) break;
  }
  INFO("seed " << s.seed);
  REQUIRE(!plan.skipped.empty());
  REQUIRE(plan.issues.empty());
  // A seed with a skipped draw plays (as the example has it: no changes.csv, no rate limit).
  auto as_played = s;
  as_played.output.changes = false;
  as_played.workloads[0].rate_per_s = 0;
  INFO(dump(kvm_check(as_played)));
  CHECK(kvm_check(as_played).empty());
  experiment::Draws draws(s.seed);
  const auto drawn = experiment::draw_generators(s, experiment::vm_ids(s), draws);
  CHECK(drawn.size() == plan.migrations.size() + plan.skipped.size());
  for (const auto& k : plan.skipped) {
    INFO("skipped draw at " << k.at_s << " s during the migration from " << k.during_s << " s");
    CHECK(k.key == "generator[0]");
    CHECK(k.at_s >= k.during_s);
    CHECK(k.at_s < k.during_s + precopy);
    bool started = false; // the migration under way is one the run plays
    for (const auto& m : plan.migrations) started = started || m.at_s == k.during_s;
    CHECK(started);
  }
  // The simulator plays exactly the migrations the plan keeps: same count, times and hosts.
  const std::uint64_t seed = s.seed;
  const auto [sim, moves] = simulated_migrations(s, seed);
  REQUIRE(moves.size() == plan.migrations.size());
  for (std::size_t i = 0; i < moves.size(); ++i) {
    const guest_results::PlannedMigration& p = plan.migrations[i];
    INFO("migration " << i << " drawn at " << p.at_s << " s; simulated switch-over at "
                      << moves[i].time_s << " s");
    CHECK(moves[i].to_host == static_cast<std::int64_t>(p.host));
    CHECK(moves[i].time_s >= p.at_s + precopy);
    CHECK(moves[i].time_s < p.at_s + kvm::migration_rules().min_gap_s);
  }
  double migrations = NAN;
  for (const auto& m : sim.metrics)
    if (m.name == "migrations") migrations = m.value;
  CHECK(migrations == static_cast<double>(plan.migrations.size()));
}

TEST_CASE("kvm's refusals of a seed's draws hold for that seed alone, the scenario's for all",
          "[backends][kvm][generator]") {
  auto s = experiment::load_scenario(kExample);
  s.seed = 1; // draws at 4.7 (played), 4.8 (skipped: a is migrating) and 8.0 s (too soon)
  const auto close = kvm_check(s);
  INFO(dump(close));
  REQUIRE(!close.empty());
  for (const auto& i : close) CHECK(i.per_seed);
  const auto plan = guest_results::plan_migrations(s, kvm::migration_rules());
  REQUIRE(plan.skipped.size() == 1);
  CHECK(plan.skipped[0].at_s == Approx(4.8).margin(0.05));

  // What the scenario asks, whatever the seed, is not per seed.
  s = experiment::load_scenario(kExample);
  experiment::apply_override(s, "workload[0].rate_per_s=100");
  const auto rate = kvm_check(s);
  INFO(dump(rate));
  REQUIRE(rate.size() == 1);
  CHECK_FALSE(rate[0].per_seed);

  // A pre-copy the simulator may still be in when the kvm run plays the next migration.
  s = experiment::load_scenario(kExample);
  experiment::apply_override(s, "vm[0].ram_mib=4096");
  const auto ram = kvm_check(s);
  INFO(dump(ram));
  bool named = false;
  for (const auto& i : ram) {
    if (i.what.find("a's 4096 MiB take 3.44 s to copy once at platform.migration_gbps = 10") ==
        std::string::npos)
      continue;
    named = true;
    CHECK((i.where + ": " + i.what).find("vm[0].ram_mib: a's 4096 MiB") != std::string::npos);
    CHECK(i.what.find("the kvm backend plays at most 2 s") != std::string::npos);
    CHECK_FALSE(i.per_seed);
  }
  CHECK(named);
}

TEST_CASE("kvm plays adaptive membership with migrations", "[backends][kvm]") {
  auto s = experiment::load_scenario(IVMC_SOURCE_DIR "/scenarios/examples/kvm_migration.toml");
  experiment::apply_override(s, "membership.detection=adaptive");
  INFO(dump(kvm_check(s)));
  CHECK(kvm_check(s).empty());
  experiment::apply_override(s, "membership.detection=group");
  const auto issues = kvm_check(s);
  INFO(dump(issues));
  REQUIRE(issues.size() == 1);
  CHECK(issues[0].what.find("the kvm backend plays static, periodic, adaptive, watch and sync "
                            "membership, not group") != std::string::npos);
}
