// See backend.hpp.
#include "ivmc/experiment/backend.hpp"

#include "ivmc/experiment/validate.hpp"

#include <cstdlib>

namespace ivmc::experiment {

std::string default_cache_dir() {
  const char* cache = std::getenv("IVMC_CACHE");
  if (cache && *cache) return cache;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/root") + "/.cache/ivmc";
}

std::vector<ScenarioIssue> issues_on(const Backend& backend, const Scenario& s) {
  auto issues = validate(s);
  if (issues.empty()) issues = backend.check(s);
  return issues;
}

} // namespace ivmc::experiment
