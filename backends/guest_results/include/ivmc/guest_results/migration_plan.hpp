// The one refusal rule set of the guest backends' migration runs (kvm: QMP live migrations
// between ivshmem servers, kvm_migration_run.hpp; xen: `xl save` + `xl restore`,
// xen_migration_run.hpp): which of a scenario's scripted `[[event]]` migrates and
// `[[generator]]` draws a run plays, and the refusals of what it cannot play, each naming the
// event, or the draw's time and seed. The draws are the simulator's and the host backend's for
// the same seed (experiment's draws.hpp), so the same seed moves the VM at the same times to
// the same hosts on every backend. What differs between the two backends is a
// `MigrationRules`; everything else is decided here, once.
#pragma once

#include "ivmc/experiment/choices.hpp"
#include "ivmc/experiment/scenario.hpp"

#include <cstddef>
#include <string>
#include <vector>

namespace ivmc::guest_results {

// What differs between the guest backends' migration runs (an aggregate: each backend lists the
// values in this order, each explained where it does).
struct MigrationRules {
  std::string backend; // "kvm", "xen": messages say "the kvm backend ..."
  // A migration needs this long between the start and it and between two migrations (the
  // machine must have finished the previous one and be ready for the next) ...
  double min_gap_s = 4;
  std::string gap_why; // ... because (for messages): "a TCG guest's migration takes ..."
  // ... and this long from the last migration to the end (the stream settles on its path).
  double settle_s = 2;
  // Whether the run plays a [[generator]]'s drawn migrations; when not, each [[generator]]
  // is refused with `no_generators`.
  bool plays_draws = true;
  std::string no_generators;
  // Said after "with migrations the kvm backend plays trust = open only" ("" for nothing).
  std::string trust_note;
  // The membership sources the run plays, in the order messages list them ...
  std::vector<experiment::Detection> detections;
  // ... and why not `static`, when it is not among them and there is more to say than that.
  std::string why_not_static;
};

// One migration of the migrating VM, scripted (an [[event]]) or drawn by a [[generator]].
struct PlannedMigration {
  double at_s = 0;      // scenario time
  std::size_t host = 0; // the destination
  std::string key;      // "event[i]" or "generator[i]", for messages
  bool drawn = false;
};

// What a run would play of `s` with seed s.seed.
struct MigrationPlan {
  std::string vm; // the migrating VM (empty: none, or several and no single stream sender)
  // Its migrations in time order; a draw's destination is resolved from the host the VM is
  // on then (host `other` if below it, `other + 1` otherwise), as the simulator does.
  std::vector<PlannedMigration> migrations;
  std::vector<experiment::ScenarioIssue> issues; // empty: all of it can be played
};
MigrationPlan plan_migrations(const experiment::Scenario& s, const MigrationRules& rules);

// True when `s` has events or generators a migration run must play (not --ignore-events).
bool plays_migrations(const experiment::Scenario& s, bool ignore_events);
// The VM named `name`, or null.
const experiment::VmConfig* vm_named(const experiment::Scenario& s, const std::string& name);

} // namespace ivmc::guest_results
