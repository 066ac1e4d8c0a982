// The kvm backend's run of a scenario with migrations (issue 14): the scenario's hosts are
// ivshmem servers on this machine, its VMs QEMU guests, and each `[[event]]` migrate and each
// migration a `[[generator]]` draws (Poisson, from the run's seed, as the simulator and the
// host backend draw them: guest_results' migration_plan.hpp, the rule set the xen backend
// shares, with kvm's migration_rules(), kvm_migration_rules.hpp) is a real QMP live migration
// between two of them, at its scenario time.
//
// What it plays (check() refuses everything else, with the reason):
//   - one tcp_stream workload from the migrating VM M to a VM R that stays put, both starting
//     on R's host (M's ivshmem device is master=on, so that its region migrates with it, and
//     QEMU admits such a device only as its server's first peer);
//   - migrate events and migrate generators of M only, each migration 4 s after the start
//     and the one before (a TCG migration takes about a second) and 2 s before the end:
//     a seed whose draws come closer is refused, naming the draw's time (another seed, a
//     lower rate or a later start_s plays); other kinds of event or generator are refused;
//   - membership static, periodic (membership.period_ms), adaptive (the core's
//     AdaptiveScanSource with period_ms, period_min_ms, period_max_ms, probe_worth_ms and
//     rate_horizon_s, as in the simulator), watch (QMP events) or sync, from the core's
//     sources (KvmMembership), with race policy resolution or prevention.
//
// How: M runs `ivmc-guest link-send` with a view page (view_page.hpp): its co-resident peers
// and version as the membership source last updated them, the truth, and the race flags
// RaceWindows gives for (M, R), all written by this process into every host's region. R runs
// `ivmc-guest link-recv`, reachable over user networking (a host port forwarded to it). The
// stream starts when both are up (the page's start flag; the scenario's clock starts then) and
// ends at duration_s (stop flag). Each migration: a destination QEMU (-incoming, paused with
// -S under sync) on the target host's server; `migrate`; on completion the truth changes at
// the destination's RESUME (a synchronous source: before `cont`, so every view is updated
// while the guest cannot run). M's race ledger counts its link operations by the page's race
// flags, with the core's RaceLedger; the run's metrics come from the two guests' reports.
#pragma once

#include "ivmc/experiment/results.hpp"
#include "ivmc/experiment/scenario.hpp"
#include "ivmc/kvm/kvm_backend.hpp"
#include "ivmc/kvm/kvm_migration_rules.hpp"
#include "ivmc/kvm/qemu.hpp"

#include <vector>

namespace ivmc::kvm {

// Why this runner cannot play `s` (empty: it can).
std::vector<experiment::ScenarioIssue> migration_run_issues(const experiment::Scenario& s);

struct MigrationRunEnv {
  std::string qemu;
  GuestImage image;
  Accel accel = Accel::tcg;
};

experiment::RunResult run_with_migrations(const experiment::Scenario& s, const KvmRunOptions& o,
                                          const MigrationRunEnv& env);

} // namespace ivmc::kvm
