// The cores of a host, or the vCPUs of a VM, in the simulated world (platform.cores_per_host,
// platform.vcpus_per_vm): work that needs a CPU is served by whichever of them finishes it
// first, each a Stage (stage.hpp: work-conserving, never behind reservations for later times).
// A busy-polling endpoint holds one of a host's cores while it polls, so the others share what
// is left (at least one: the scheduler still time-slices the last core).
#pragma once

#include "ivmc/sim/stage.hpp"

#include <algorithm>
#include <cstddef>
#include <vector>

namespace ivmc::sim {

class Cpus {
public:
  explicit Cpus(std::size_t n = 1) : cores_(std::max<std::size_t>(n, 1)) {}

  // Serves `work` ns that can start at `arrive` on the first usable CPU to finish it; returns
  // when it is done.
  Nanos serve(Nanos now, Nanos arrive, Nanos work) {
    const std::size_t usable = cores_.size() > held_ ? cores_.size() - held_ : 1;
    std::size_t best = 0;
    Nanos best_end = cores_[0].finish(arrive, work);
    for (std::size_t i = 1; i < usable; ++i) {
      const Nanos end = cores_[i].finish(arrive, work);
      if (end < best_end) best_end = end, best = i;
    }
    return cores_[best].serve(now, arrive, work);
  }

  void hold() { ++held_; }
  void release() { held_ -= held_ > 0 ? 1 : 0; }
  std::size_t held() const { return held_; }

private:
  std::vector<Stage> cores_;
  std::size_t held_ = 0; // cores held by busy pollers
};

} // namespace ivmc::sim
