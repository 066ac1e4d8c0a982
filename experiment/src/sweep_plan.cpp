// See sweep_plan.hpp.
#include "sweep_plan.hpp"

#include "csv.hpp"
#include "files.hpp"

#include "ivmc/experiment/overrides.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <stdexcept>

namespace ivmc::experiment::detail {

CrossProduct::CrossProduct(const SweepOptions& o) : params_(o.params) {
  for (const auto& [key, values] : params_) {
    if (values.empty()) throw std::invalid_argument("sweep: parameter " + key + " has no values");
    if (count_ > (std::size_t{1} << 32) / values.size())
      throw std::invalid_argument("sweep: the cross product has more than 2^32 points");
    count_ *= values.size();
  }
}

std::vector<std::string> CrossProduct::values(std::size_t point) const {
  std::vector<std::string> out(params_.size());
  for (std::size_t i = params_.size(); i-- > 0;) {
    const auto& vs = params_[i].second;
    out[i] = vs[point % vs.size()];
    point /= vs.size();
  }
  return out;
}

std::size_t CrossProduct::index(const std::vector<std::string>& values) const {
  std::size_t point = 0;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const auto& vs = params_[i].second;
    const auto it = std::find(vs.begin(), vs.end(), values[i]);
    if (it == vs.end()) return count_;
    point = point * vs.size() + static_cast<std::size_t>(it - vs.begin());
  }
  return point;
}

std::string CrossProduct::label(std::size_t point) const {
  if (params_.empty()) return "the base scenario";
  const auto vs = values(point);
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < params_.size(); ++i) parts.push_back(params_[i].first + "=" + vs[i]);
  return join(parts, ", ");
}

Scenario CrossProduct::scenario(const Scenario& base, std::size_t point, std::uint64_t seed) const {
  Scenario s = base;
  const auto vs = values(point);
  for (std::size_t i = 0; i < params_.size(); ++i)
    apply_override(s, params_[i].first + "=" + vs[i]);
  s.seed = seed;
  return s;
}

void check_options(const SweepOptions& o) {
  std::set<std::string> keys;
  for (const auto& [key, values] : o.params) {
    if (key == kSeedColumn)
      throw std::invalid_argument("sweep: seed is not a parameter; use the seeds count and the "
                                  "first seed");
    if (key == kPointColumn || key == kEventsColumn || key == kWallColumn)
      throw std::invalid_argument("sweep: " + key + " is not a scenario key");
    if (!keys.insert(key).second)
      throw std::invalid_argument("sweep: parameter " + key + " is given twice");
    std::set<std::string> seen;
    for (const auto& v : values) {
      if (!seen.insert(v).second)
        throw std::invalid_argument(
            fmt::format("sweep: parameter {} lists the value '{}' twice", key, v));
    }
  }
  if (o.seeds == 0) throw std::invalid_argument("sweep: seeds must be at least 1");
  if (o.out_dir.empty()) throw std::invalid_argument("sweep: no output directory");
}

void check_points(const Scenario& base, const CrossProduct& points, std::uint64_t seed,
                  const Backend& backend) {
  for (std::size_t p = 0; p < points.count(); ++p) {
    std::vector<ScenarioIssue> issues;
    try {
      issues = issues_on(backend, points.scenario(base, p, seed));
    } catch (const ScenarioError& e) {
      issues = e.issues();
    }
    // What this seed's draws alone cause refuses that run only (refused_runs).
    std::erase_if(issues, [](const ScenarioIssue& i) { return i.per_seed; });
    if (issues.empty()) continue;
    for (auto& issue : issues)
      issue.where = fmt::format("sweep point {} ({}): {}", p, points.label(p), issue.where);
    throw ScenarioError(std::move(issues));
  }
}

std::vector<Refusal> refused_runs(const Scenario& base, const CrossProduct& points,
                                  const std::vector<std::pair<std::size_t, std::uint64_t>>& runs,
                                  const Backend& backend) {
  std::vector<Refusal> out;
  if (base.generators.empty()) return out; // nothing is drawn: every seed plays the same
  for (const auto& [p, seed] : runs) {
    std::vector<ScenarioIssue> issues;
    try {
      issues = issues_on(backend, points.scenario(base, p, seed));
    } catch (const ScenarioError& e) {
      issues = e.issues();
    }
    if (issues.empty()) continue;
    const bool per_seed = std::all_of(issues.begin(), issues.end(),
                                      [](const ScenarioIssue& i) { return i.per_seed; });
    if (!per_seed) {
      for (auto& issue : issues)
        issue.where =
            fmt::format("sweep point {} ({}), seed {}: {}", p, points.label(p), seed, issue.where);
      throw ScenarioError(std::move(issues));
    }
    out.push_back({p, seed, std::move(issues)});
  }
  return out;
}

} // namespace ivmc::experiment::detail
