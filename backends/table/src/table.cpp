// The table of backends (table.hpp), over the list the build generated (backend_list.hpp).
#include "ivmc/backends/table.hpp"

#include "backend_list.hpp"

#include <stdexcept>

namespace ivmc::backends {

std::vector<std::string> backend_names() {
  std::vector<std::string> out;
  for (const auto& entry : kBackends) out.emplace_back(entry.name);
  return out;
}

std::unique_ptr<experiment::Backend> make_backend(std::string_view name,
                                                  const experiment::BackendSettings& settings) {
  for (const auto& entry : kBackends)
    if (entry.name == name) return entry.make(settings);
  std::string known;
  for (const auto& entry : kBackends)
    known += (known.empty() ? "" : ", ") + std::string(entry.name);
  throw std::invalid_argument("unknown backend '" + std::string(name) + "'; this build has " +
                              known);
}

} // namespace ivmc::backends
