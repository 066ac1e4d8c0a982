// Seeded randomness every backend draws the same way, and the events a scenario's Poisson
// [[generator]]s produce: drawn once here, so that the simulator and real processes play the
// same migrations, creations and shutdowns for the same seed.
#pragma once

#include "ivmc/core/membership.hpp"
#include "ivmc/experiment/scenario.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace ivmc::experiment {

// Portable, seeded draws: the same seed gives the same values on every platform (the standard
// distributions are implementation-defined, the engine is not).
class Draws {
public:
  explicit Draws(std::uint64_t seed) : engine_(seed) {}
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; } // [0, 1)
  double exponential(double rate) { return -std::log1p(-uniform()) / rate; }
  std::size_t below(std::size_t n) {
    return static_cast<std::size_t>(uniform() * static_cast<double>(n));
  }

private:
  std::mt19937_64 engine_;
};

// One event a generator drew.
struct DrawnEvent {
  double at_s = 0;
  EventKind kind = EventKind::migrate;
  VmId vm = 0;
  // migrate: which of the other hosts, counted without the one the VM is on when it happens
  // (host `other` if below it, `other + 1` otherwise): resolved then, by the backend.
  std::size_t other = 0;
  HostId host = 0;           // create: where
  std::size_t generator = 0; // which of s.generators drew it
};

// Every generator's events in the scenario's order, each generator's in time order, drawn from
// `draws` (time, VM, then the host) within [start_s, min(stop_s, duration_s)).
std::vector<DrawnEvent> draw_generators(const Scenario& s, const std::map<std::string, VmId>& ids,
                                        Draws& draws);

} // namespace ivmc::experiment
