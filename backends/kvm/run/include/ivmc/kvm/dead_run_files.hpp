// What a kvm run killed outright left behind. An interrupted `ivmc sweep` kills its running
// child with SIGKILL (experiment/child_run.hpp), so that run's ivshmem servers never remove
// their shm objects (/dev/shm/ivmc-mig-<pid>-h<n>) or their sockets and lock files, nor its
// QEMUs their QMP and migration sockets (/tmp/ivmc-mig-<pid>-...). The next run removes them.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace ivmc::kvm {

// Removes every entry of `dir` named `<prefix><pid>-...<suffix>` (any suffix if `suffixes` is
// empty) whose process `pid` no longer exists (kill(pid, 0) fails with ESRCH); entries of live
// processes, names that do not parse and directories are left alone. Returns how many were
// removed.
std::size_t remove_files_of_dead_runs(const std::string& dir, std::string_view prefix,
                                      const std::vector<std::string_view>& suffixes = {});

} // namespace ivmc::kvm
