// What every backend derives the same way from a scenario's VMs and [membership] table: the
// VMs' ids and addresses in the core's topology, and the parameters of the membership source
// the scenario names. One definition, so that a scenario's views and race windows are built
// alike whether the simulator or real processes play it.
#pragma once

#include "ivmc/core/membership.hpp"
#include "ivmc/core/membership_sources.hpp"
#include "ivmc/experiment/scenario.hpp"

#include <map>
#include <string>

namespace ivmc::experiment {

// VM ids: 1 + the index in s.vms, then the VMs that [[event]]s create, in order of appearance.
std::map<std::string, VmId> vm_ids(const Scenario& s);

// The survey's <dom id, IP/MAC> of VM `id`: dom id = id, IP 10.a.b.c from its bits, no MAC.
VmAddress vm_address(VmId id);

// The scenario's membership parameters in the core's units (ns); for a static list, the list
// itself: every VM on the host it starts on.
MembershipParams membership_params(const Scenario& s, const std::map<std::string, VmId>& ids);

} // namespace ivmc::experiment
