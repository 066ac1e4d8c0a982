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
// ScenarioError naming the first point that does not.
void check_points(const Scenario& base, const CrossProduct& points, std::uint64_t seed,
                  const Backend& backend);

} // namespace ivmc::experiment::detail
