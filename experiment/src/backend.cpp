// See backend.hpp.
#include "ivmc/experiment/backend.hpp"

#include "ivmc/experiment/validate.hpp"

#include <cstdlib>
#include <string>

namespace ivmc::experiment {

std::string default_cache_dir() {
  const char* cache = std::getenv("IVMC_CACHE");
  if (cache && *cache) return cache;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/root") + "/.cache/ivmc";
}

std::vector<ScenarioIssue> unrecorded_changes(const Scenario& s, std::string_view backend) {
  if (!s.output.changes) return {};
  return {issue_at(s, "output.changes",
                   "true: changes.csv is recorded by the simulator only; the " +
                       std::string(backend) + " backend records no per-change rows")};
}

std::vector<ScenarioIssue> issues_on(const Backend& backend, const Scenario& s) {
  auto issues = validate(s);
  if (issues.empty()) issues = backend.check(s);
  return issues;
}

} // namespace ivmc::experiment
