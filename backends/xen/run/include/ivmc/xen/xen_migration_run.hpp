// The xen backend's run of a scenario with scripted migrations (issue 14, Xen part).
//
// One Xen machine stands for every scenario host. A migrate event is played as Xen moves a
// domain within one machine: `xl save` to a file, `xl restore -p` (paused; the domain comes
// back with a new domain id, XenLoop's case), then `xl unpause`, at its scenario time. Which
// "host" each VM is on is dom0's bookkeeping: its view service (backends/xen/tools/
// view_service.hpp) lists as co-resident the VMs it placed on the same host, learning of the
// restored domain from XenStore by a scan every membership.period_ms (periodic), a watch
// (watch), or at once before the domain runs (sync). The sender's link (tools/link_follow.hpp)
// notices its new id, abandons the ring (grants and event channels did not survive), re-sends
// what the ring may not have delivered over TCP and comes back to a new ring once its view
// lists the receiver again. Its sends while it has no view after a restore are its race window.
//
// What it plays (check() refuses everything else, with the reason):
//   - one tcp_stream from the migrating VM to a VM that stays, running the whole scenario,
//     unthrottled;
//   - migrate events of that VM only, at least 4 s apart and from the start, the last 3 s
//     before the end: guest_results' migration_plan.hpp, the rule set the kvm backend shares,
//     with xen_migration_rules();
//   - membership periodic, watch or sync; race resolution or prevention; channel on; trust open.
#pragma once

#include "ivmc/experiment/results.hpp"
#include "ivmc/experiment/scenario.hpp"
#include "ivmc/guest_results/migration_plan.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace ivmc::xen {

// What the xen run needs of the migrations it plays (guest_results' MigrationRules).
const guest_results::MigrationRules& xen_migration_rules();
// Why the xen backend cannot play `s`'s migrations (empty: it can).
std::vector<experiment::ScenarioIssue> xen_migration_issues(const experiment::Scenario& s);
// The plan lines dom0's `ivmc-xen-agent plan` plays them from (host, follow, migrate,
// membership), after the `vm` lines of the two VMs.
std::string xen_migration_plan(const experiment::Scenario& s);
// The run's results from dom0's console (IVMC-RESULT w=0 side=from|to, IVMC-MOVE,
// IVMC-SERVICE); throws when a side failed or the bytes do not match.
experiment::RunResult xen_migration_results(const experiment::Scenario& s,
                                            const std::string& console,
                                            std::chrono::steady_clock::time_point wall0);

} // namespace ivmc::xen
