// The table of the backends this build has: the one place `ivmc run --backend`, `ivmc sweep
// --backend` and Python's `backend=` turn a name into a Backend. Which backends are in it is
// decided by the build (backends/table/CMakeLists.txt), not by #ifdefs in the callers.
#pragma once

#include "ivmc/experiment/backend.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ivmc::backends {

// The names of the backends this build has, in the table's order ("sim" first).
std::vector<std::string> backend_names();

// A new backend `name` with `settings`. Throws std::invalid_argument naming the known backends
// on an unknown name ("unknown backend 'qemu'; this build has sim, kvm, xen").
std::unique_ptr<experiment::Backend> make_backend(std::string_view name,
                                                  const experiment::BackendSettings& settings);

} // namespace ivmc::backends
