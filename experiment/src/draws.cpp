// The events a scenario's generators produce (draws.hpp).
#include "ivmc/experiment/draws.hpp"

#include <algorithm>

namespace ivmc::experiment {

std::vector<DrawnEvent> draw_generators(const Scenario& s, const std::map<std::string, VmId>& ids,
                                        Draws& draws) {
  std::vector<DrawnEvent> out;
  for (std::size_t gi = 0; gi < s.generators.size(); ++gi) {
    const GeneratorConfig& g = s.generators[gi];
    std::vector<VmId> candidates;
    for (const auto& name : g.vms) candidates.push_back(ids.at(name));
    if (candidates.empty()) { // every VM, by id
      for (VmId id = 1; id <= ids.size(); ++id) candidates.push_back(id);
    }
    const double stop = g.stop_s < 0 ? s.duration_s : std::min(g.stop_s, s.duration_s);
    for (double t = g.start_s + draws.exponential(g.rate_per_s); t < stop;
         t += draws.exponential(g.rate_per_s)) {
      DrawnEvent e;
      e.at_s = t;
      e.kind = g.kind;
      e.generator = gi;
      e.vm = candidates[draws.below(candidates.size())];
      if (g.kind == EventKind::migrate) {
        e.other = draws.below(s.platform.hosts - 1);
      } else if (g.kind == EventKind::create) {
        e.host = static_cast<HostId>(draws.below(s.platform.hosts));
      }
      out.push_back(e);
    }
  }
  return out;
}

} // namespace ivmc::experiment
