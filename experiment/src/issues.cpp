// See issues.hpp.
#include "issues.hpp"

#include "fields.hpp"
#include "values.hpp"

#include <algorithm>
#include <optional>
#include <tuple>
#include <utility>

namespace ivmc::experiment::detail {

// The item a key path such as "workload[1].to" is about: ("workload[1]", its line), if any.
std::optional<std::pair<std::string, std::size_t>> item_of(const Scenario& s,
                                                           const std::string& key) {
  std::optional<std::pair<std::string, std::size_t>> out;
  const auto bracket = key.find('[');
  const auto close = key.find(']');
  if (bracket == std::string::npos || close == std::string::npos || close < bracket) return out;
  const auto name = std::string_view(key).substr(0, bracket);
  const auto index = parse_integer(std::string_view(key).substr(bracket + 1, close - bracket - 1));
  if (!index || *index < 0) return out;
  for_each_list([&](const auto& list) {
    if (list.name != name) return;
    const auto& items = s.*(list.member);
    const auto i = static_cast<std::size_t>(*index);
    out.emplace(key.substr(0, close + 1), i < items.size() ? items[i].line : 0);
  });
  return out;
}

ScenarioIssue resolve(const Issue& issue, const Scenario& s,
                      const std::map<std::string, std::string>& where) {
  if (!issue.where.empty()) return {issue.where, issue.what};
  std::string at;
  if (auto w = where.find(issue.key); w != where.end()) {
    at = w->second;
  } else if (auto item = item_of(s, issue.key)) {
    if (auto w2 = where.find(item->first); w2 != where.end())
      at = w2->second;
    else if (item->second != 0)
      at = s.origin + ":" + std::to_string(item->second);
  }
  if (at.empty()) return {issue.key, issue.what};
  return {at, issue.key.empty() ? issue.what : issue.key + ": " + issue.what};
}

void sort_issues(std::vector<ScenarioIssue>& issues) {
  auto order = [](const ScenarioIssue& i) {
    const auto colon = i.where.rfind(':');
    if (colon != std::string::npos) {
      if (auto line = parse_integer(std::string_view(i.where).substr(colon + 1)))
        return std::tuple(0, i.where.substr(0, colon), *line);
    }
    return std::tuple(1, std::string(), std::int64_t{0});
  };
  std::stable_sort(issues.begin(), issues.end(),
                   [&](const auto& a, const auto& b) { return order(a) < order(b); });
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

} // namespace ivmc::experiment::detail
