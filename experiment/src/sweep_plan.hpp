// A sweep's plan (internal): its points, the cross product of the parameters' values in key
// order (the first key varying slowest), and the checks made before anything runs.
#pragma once

#include "ivmc/experiment/backend.hpp"
#include "ivmc/experiment/scenario.hpp"
#include "ivmc/experiment/sweep.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ivmc::experiment::detail {

class CrossProduct {
public:
  // Throws std::invalid_argument on a parameter without values or more than 2^32 points.
  explicit CrossProduct(const SweepOptions& o);
  std::size_t count() const { return count_; }
  // The values of point `point`, one per parameter.
  std::vector<std::string> values(std::size_t point) const;
  // The point with these values, or count() when one of them is not in its list.
  std::size_t index(const std::vector<std::string>& values) const;
  // "channel.notify=atw, membership.period_ms=50", for messages.
  std::string label(std::size_t point) const;
  // The base with the point's overrides applied in order, and the seed.
  Scenario scenario(const Scenario& base, std::size_t point, std::uint64_t seed) const;

private:
  std::vector<std::pair<std::string, std::vector<std::string>>> params_;
  std::size_t count_ = 1;
};

// Throws std::invalid_argument on options no sweep can run (a reserved column as a parameter,
// a repeated parameter or value, no seeds, no output directory).
void check_options(const SweepOptions& o);

// Every point must build, validate and pass backend.check before anything runs; throws
// ScenarioError naming the first point that does not. Issues only `seed` causes
// (ScenarioIssue::per_seed) do not count here: refused_runs finds them for every seed.
void check_points(const Scenario& base, const CrossProduct& points, std::uint64_t seed,
                  const Backend& backend);

// A run the backend refuses for its seed alone: a real backend cannot play what that seed's
// generators drew (ScenarioIssue::per_seed). The sweep makes the other runs and reports these.
struct Refusal {
  std::size_t point = 0;
  std::uint64_t seed = 0;
  std::vector<ScenarioIssue> issues;
};

// Of `runs` (point, seed), those the backend refuses for their seed, checked before anything
// runs (nothing boots: Backend::check). Only a scenario with [[generator]]s draws anything
// per seed; for others this checks nothing. Throws ScenarioError naming the point and seed if
// a run has an issue that is not per_seed (never made, never silently dropped).
std::vector<Refusal> refused_runs(const Scenario& base, const CrossProduct& points,
                                  const std::vector<std::pair<std::size_t, std::uint64_t>>& runs,
                                  const Backend& backend);

} // namespace ivmc::experiment::detail
