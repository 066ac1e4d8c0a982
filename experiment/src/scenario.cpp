// ScenarioError and issue_at (scenario.hpp).
#include "ivmc/experiment/scenario.hpp"

#include "issues.hpp"

namespace ivmc::experiment {

namespace {

std::string join_issues(const std::vector<ScenarioIssue>& issues) {
  std::string out;
  for (const auto& i : issues) {
    if (!out.empty()) out += '\n';
    out += i.where + ": " + i.what;
  }
  return out;
}

} // namespace

ScenarioError::ScenarioError(std::vector<ScenarioIssue> issues)
    : std::runtime_error(join_issues(issues)), issues_(std::move(issues)) {}

ScenarioIssue issue_at(const Scenario& s, const std::string& key, std::string what) {
  return detail::resolve({key, "", std::move(what)}, s, s.set_at);
}

} // namespace ivmc::experiment
