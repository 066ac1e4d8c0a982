// The one refusal rule set of the guest backends' migration runs (kvm: QMP live migrations
// between ivshmem servers, kvm_migration_run.hpp; xen: `xl save` + `xl restore`,
// xen_migration_run.hpp): which of a scenario's scripted `[[event]]` migrates and
// `[[generator]]` draws a run plays, and the refusals of what it cannot play, each naming the
// event, or the draw's time and seed. The draws are the simulator's and the host backend's for
// the same seed (experiment's draws.hpp), so the same seed moves the VM at the same times to
// the same hosts on every backend. What differs between the two backends is a
// `MigrationRules`; everything else is decided here, once.
//
// A draw that falls while the VM is still migrating: the simulator skips it (the VM is on its
// way and cannot be sent elsewhere; sim/src/world_events.cpp), and so does the host backend.
// Its migration lasts at least the pre-copy (its RAM copied once at platform.migration_gbps,
// precopy_s), so a draw that soon after the VM's previous migration started is skipped here
// too: not played, not counted in `migrations`, listed in `skipped`. A draw the simulator
// plays but a real machine cannot start that soon (closer than `min_gap_s` to the previous
// migration) is refused, the issue marked `per_seed`: `ivmc run` exits 2 naming the draw, a
// sweep reports that seed refused and makes the others (docs/results.md, "Seeds a real backend
// refuses"). Either way a seed the real backend plays moves the VM exactly as the simulator
// does: the same migrations at the same times to the same hosts. For that the simulator's
// migration must end before the gap does: with several migrations, a pre-copy longer than half
// the gap is refused (a smaller ram_mib or a larger migration_gbps).
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

// A draw not played because the VM is still migrating then (as the simulator skips it).
struct SkippedDraw {
  double at_s = 0;
  std::string key;     // "generator[i]"
  double during_s = 0; // the start of the migration under way
};

// What a run would play of `s` with seed s.seed.
struct MigrationPlan {
  std::string vm; // the migrating VM (empty: none, or several and no single stream sender)
  // Its migrations in time order; a draw's destination is resolved from the host the VM is
  // on then (host `other` if below it, `other + 1` otherwise), as the simulator does.
  std::vector<PlannedMigration> migrations;
  std::vector<SkippedDraw> skipped; // in time order
  // Empty: all of it can be played. Those only this seed's draws cause are `per_seed`.
  std::vector<experiment::ScenarioIssue> issues;
};
MigrationPlan plan_migrations(const experiment::Scenario& s, const MigrationRules& rules);

// The least time the simulator's and the host backend's migration of `vm` takes: its RAM
// (ram_mib) copied once at platform.migration_gbps. 0 for a VM `s` does not have.
double precopy_s(const experiment::Scenario& s, const std::string& vm);
// True when `s` has events or generators a migration run must play (not --ignore-events).
bool plays_migrations(const experiment::Scenario& s, bool ignore_events);
// The VM named `name`, or null.
const experiment::VmConfig* vm_named(const experiment::Scenario& s, const std::string& name);

} // namespace ivmc::guest_results
