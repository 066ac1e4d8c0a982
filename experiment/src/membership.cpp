// What every backend derives the same way from a scenario's membership (membership.hpp).
#include "ivmc/experiment/membership.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace ivmc::experiment {

namespace {
Nanos ns(double v) {
  return static_cast<Nanos>(std::llround(v));
}
} // namespace

std::map<std::string, VmId> vm_ids(const Scenario& s) {
  std::map<std::string, VmId> ids;
  VmId next = 1;
  for (const VmConfig& v : s.vms) ids.emplace(v.name, next++);
  for (const EventConfig& e : s.events) {
    if (e.kind == EventKind::create && !ids.count(e.vm)) ids.emplace(e.vm, next++);
  }
  return ids;
}

VmAddress vm_address(VmId id) {
  return VmAddress{id, fmt::format("10.{}.{}.{}", (id >> 16) & 255, (id >> 8) & 255, id & 255), ""};
}

MembershipParams membership_params(const Scenario& s, const std::map<std::string, VmId>& ids) {
  MembershipParams mp;
  mp.period = std::max<Nanos>(ns(s.membership.period_ms * 1e6), 1);
  mp.phase = ns(s.membership.phase_ms * 1e6);
  mp.propagation_delay = ns(s.membership.propagation_delay_us * 1e3);
  mp.period_min = ns(s.membership.period_min_ms * 1e6);
  mp.period_max = ns(s.membership.period_max_ms * 1e6);
  mp.probe_worth = std::max<Nanos>(ns(s.membership.probe_worth_ms * 1e6), 1);
  mp.horizon = std::max<Nanos>(ns(s.membership.rate_horizon_s * 1e9), 1);
  mp.watch_delay = ns(s.membership.watch_delay_us * 1e3);
  if (s.membership.detection == Detection::static_list) {
    std::map<std::size_t, std::string> lines;
    for (const VmConfig& v : s.vms) lines[v.host] += " " + std::to_string(ids.at(v.name));
    for (const auto& [h, l] : lines) mp.static_list_text += fmt::format("host {}:{}\n", h, l);
  }
  return mp;
}

} // namespace ivmc::experiment
