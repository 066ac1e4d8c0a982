// The run's membership changes as changes.csv records them (scenario key output.changes;
// docs/results.md): each change's event, how long its observers took to learn of it (the
// membership source's records), and what ran inside its race windows (counted as it happened,
// world_sender.cpp and world_links.cpp).
#include "world.hpp"

#include <limits>

namespace ivmc::sim {

std::string World::vm_name(VmId id) const {
  return id >= 1 && id <= vms_.size() ? vms_[id - 1].name : "vm" + std::to_string(id);
}

std::vector<experiment::ChangeRecord> World::change_records() const {
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<experiment::ChangeRecord> out(std::min<std::size_t>(changes_.size(), events_seen_));
  std::vector<double> delay_sum(out.size(), 0);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const ChangeStats& c = changes_[i];
    experiment::ChangeRecord& r = out[i];
    r.time_s = static_cast<double>(c.event.time) / 1e9;
    switch (c.event.kind) {
    case TopologyEvent::Kind::migrate:
      r.kind = "migration";
      r.from_host = c.event.from;
      r.to_host = c.event.to;
      break;
    case TopologyEvent::Kind::create:
      r.kind = "creation";
      r.to_host = c.event.to;
      break;
    case TopologyEvent::Kind::shutdown:
      r.kind = "shutdown";
      r.from_host = c.event.from;
      break;
    }
    r.vm = vm_name(c.event.vm);
    r.stale_sends = c.stale_sends;
    r.race_operations = c.race_operations;
    r.race_errors = c.race_errors;
    r.detection_max_s = nan;
  }
  for (const NotificationRecord& rec : source_->records()) {
    if (rec.change >= out.size() || rec.observer == rec.subject) continue;
    experiment::ChangeRecord& r = out[rec.change];
    ++r.observers;
    if (rec.t_notified == kNever) continue;
    const double delay = static_cast<double>(rec.t_notified - rec.t_event) / 1e9;
    r.detection_max_s = r.notified == 0 ? delay : std::max(r.detection_max_s, delay);
    ++r.notified;
    delay_sum[rec.change] += delay;
  }
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i].detection_mean_s =
        out[i].notified ? delay_sum[i] / static_cast<double>(out[i].notified) : nan;
  return out;
}

} // namespace ivmc::sim
