// Scenario issues while they are found (internal): the key path they are about, resolved to the
// line that set the key when reported.
#pragma once

#include "ivmc/experiment/scenario.hpp"

#include <map>
#include <string>
#include <vector>

namespace ivmc::experiment::detail {

struct Issue {
  std::string key;   // the key path it is about ("workload[1].to"), "" for the whole file
  std::string where; // "origin:line" when known
  std::string what;  // complete when `where` was set at creation; otherwise without the key
};

// A check's issue as reported: at the line that set the key if known (then `what` names the
// key), else at the key path.
ScenarioIssue resolve(const Issue& issue, const Scenario& s,
                      const std::map<std::string, std::string>& where);

// Issues in file order: "origin:line" ones by origin and line, key paths after.
void sort_issues(std::vector<ScenarioIssue>& issues);

// "a, b, c".
std::string join(const std::vector<std::string>& names);

} // namespace ivmc::experiment::detail
