// The migrations the kvm backend's migration run plays of a scenario (kvm_migration_run.hpp):
// its scripted `[[event]]` migrates and its `[[generator]]`s' draws for the run's seed, drawn
// as the simulator and the host backend draw them (experiment's draws.hpp), so the same seed
// moves the VM at the same times to the same hosts on every backend. What cannot be played of
// them (another VM, another kind of event, two migrations closer than kMinGapS) comes back as
// issues, each naming the event or the draw's time and seed: refused, never dropped.
#pragma once

#include "ivmc/experiment/scenario.hpp"

#include <cstddef>
#include <string>
#include <vector>

namespace ivmc::kvm {

// A TCG guest's migration takes about a second, and the next destination QEMU must be up:
// the run needs this long between the start and a migration and between migrations.
inline constexpr double kMinGapS = 4;
// And this long from the last migration to the end (the stream settles on its new path).
inline constexpr double kSettleS = 2;

// One migration of the migrating VM, scripted (an [[event]]) or drawn by a [[generator]].
struct PlannedMigration {
  double at_s = 0;      // scenario time
  std::size_t host = 0; // the destination
  std::string key;      // "event[i]" or "generator[i]", for messages
  bool drawn = false;
};

// What the run would play of `s` with seed s.seed.
struct MigrationPlan {
  std::string vm; // the migrating VM (empty: none, or several and no single stream sender)
  // Its migrations in time order; a draw's destination is resolved from the host the VM is
  // on then (host `other` if below it, `other + 1` otherwise), as the simulator does.
  std::vector<PlannedMigration> migrations;
  std::vector<experiment::ScenarioIssue> issues; // empty: all of it can be played
};
MigrationPlan plan_migrations(const experiment::Scenario& s);

} // namespace ivmc::kvm
