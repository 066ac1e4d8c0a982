// What both guest backends' migration runs refuse of a scenario (kvm_migration_run.hpp,
// xen_migration_run.hpp): the migrations' rules (migration_plan.hpp), then what both play
// around them: exactly one tcp_stream from the migrating VM to a VM that stays, running the
// whole scenario unthrottled, with only those two VMs; the membership sources the backend's
// rules list; race resolution or prevention; the channel on; no pool; trust open. Each backend
// adds its own (kvm's placement of the two VMs, xen's VM names and scan period) after these.
#pragma once

#include "ivmc/experiment/scenario.hpp"
#include "ivmc/guest_results/migration_plan.hpp"

#include <vector>

namespace ivmc::guest_results {

// Every issue of plan_migrations(s, rules), then the stream's and the channel's, in that order.
std::vector<experiment::ScenarioIssue> migration_run_issues(const experiment::Scenario& s,
                                                            const MigrationRules& rules);

} // namespace ivmc::guest_results
