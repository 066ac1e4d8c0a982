// What the kvm backend's migration run (kvm_migration_run.hpp) needs of the migrations it
// plays, as parameters of the guest backends' one rule set (guest_results' migration_plan.hpp):
// 4 s from the start and between migrations (a TCG guest's migration takes about a second, and
// the next destination QEMU must be up), 2 s from the last one to the end, draws played.
#pragma once

#include "ivmc/guest_results/migration_plan.hpp"

namespace ivmc::kvm {

const guest_results::MigrationRules& migration_rules();

} // namespace ivmc::kvm
