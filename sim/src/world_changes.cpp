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

// How many observers a change had (not counting the subject itself), and how long those that
// learnt of it took.
void World::fold_into(ChangeStats& c, const NotificationRecord& rec) {
  if (rec.observer == rec.subject) return;
  ++c.observers;
  if (rec.t_notified == kNever) return;
  const double delay = static_cast<double>(rec.t_notified - rec.t_event) / 1e9;
  c.delay_max_s = c.notified == 0 ? delay : std::max(c.delay_max_s, delay);
  c.delay_sum_s += delay;
  ++c.notified;
}

void World::retire_records() {
  if (keeping_ == nullptr) return;
  const std::size_t end = windows_->oldest_remembered();
  if (s_.output.changes) {
    keeping_->retire_records_before(end, [this](const NotificationRecord& r) {
      if (r.change < changes_.size()) fold_into(changes_[r.change], r);
    });
  } else {
    keeping_->retire_records_before(end, {});
  }
}

std::vector<experiment::ChangeRecord> World::change_records() const {
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<experiment::ChangeRecord> out(std::min<std::size_t>(changes_.size(), events_seen_));
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
  }
  // The records still kept (the rest were folded in as they left: retire_records), into a
  // copy, so that asking twice gives the same answer.
  std::vector<ChangeStats> folded(changes_.begin(), changes_.begin() + out.size());
  for (const NotificationRecord& rec : source_->records()) {
    if (rec.change < out.size()) fold_into(folded[rec.change], rec);
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    const ChangeStats& c = folded[i];
    out[i].observers = c.observers;
    out[i].notified = c.notified;
    out[i].detection_max_s = c.notified ? c.delay_max_s : nan;
    out[i].detection_mean_s = c.notified ? c.delay_sum_s / static_cast<double>(c.notified) : nan;
  }
  return out;
}

} // namespace ivmc::sim
