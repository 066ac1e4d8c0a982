// The guest backends' migrations and their refusals: see migration_plan.hpp.
#include "ivmc/guest_results/migration_plan.hpp"

#include "ivmc/experiment/choices.hpp"
#include "ivmc/experiment/draws.hpp"
#include "ivmc/experiment/membership.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

namespace ivmc::guest_results {
namespace {

using experiment::EventConfig;
using experiment::EventKind;
using experiment::issue_at;
using experiment::Scenario;

} // namespace

bool plays_migrations(const Scenario& s, bool ignore_events) {
  return !ignore_events && (!s.events.empty() || !s.generators.empty());
}

const experiment::VmConfig* vm_named(const Scenario& s, const std::string& name) {
  for (const auto& v : s.vms)
    if (v.name == name) return &v;
  return nullptr;
}

MigrationPlan plan_migrations(const Scenario& s, const MigrationRules& rules) {
  MigrationPlan plan;
  const auto ids = experiment::vm_ids(s);
  std::map<VmId, std::string> names;
  for (const auto& [name, id] : ids) names[id] = name;
  // The generators' draws for this seed, drawn as the simulator and the host backend draw them.
  experiment::Draws draws(s.seed);
  const std::vector<experiment::DrawnEvent> drawn = experiment::draw_generators(s, ids, draws);

  // Every migration the scenario asks for, scripted or drawn, in time order (a draw's
  // destination is resolved below, once the host it leaves is known).
  struct Move {
    double at_s = 0;
    std::string vm, key;
    bool drawn = false;
    std::size_t host = 0; // scripted: the destination; drawn: `other`
  };
  std::vector<Move> moves;
  std::set<std::string> moved;
  for (std::size_t i = 0; i < s.events.size(); ++i) {
    const EventConfig& e = s.events[i];
    const std::string key = fmt::format("event[{}]", i);
    if (e.kind != EventKind::migrate) {
      plan.issues.push_back(issue_at(s, key,
                                     fmt::format("the {} backend plays migrate events only, not {}",
                                                 rules.backend, experiment::to_string(e.kind))));
      continue;
    }
    moves.push_back({e.at_s, e.vm, key, false, e.host});
    moved.insert(e.vm);
  }
  for (std::size_t i = 0; i < s.generators.size(); ++i) {
    const std::string key = fmt::format("generator[{}]", i);
    if (!rules.plays_draws)
      plan.issues.push_back(issue_at(s, key, rules.no_generators));
    else if (s.generators[i].kind != EventKind::migrate)
      plan.issues.push_back(
          issue_at(s, key,
                   fmt::format("the {} backend's generators draw migrations only, not {}",
                               rules.backend, experiment::to_string(s.generators[i].kind))));
  }
  for (const experiment::DrawnEvent& d : drawn) {
    // Its generator is refused above.
    if (!rules.plays_draws || d.kind != EventKind::migrate) continue;
    moves.push_back(
        {d.at_s, names.at(d.vm), fmt::format("generator[{}]", d.generator), true, d.other});
    moved.insert(names.at(d.vm));
  }
  std::stable_sort(moves.begin(), moves.end(),
                   [](const Move& a, const Move& b) { return a.at_s < b.at_s; });

  // The migrating VM: the one every migration moves, or else the one stream's sender.
  if (moved.size() == 1)
    plan.vm = *moved.begin();
  else if (s.workloads.size() == 1 && moved.count(s.workloads[0].from))
    plan.vm = s.workloads[0].from;
  double last = 0;
  std::size_t here = 0;
  if (const auto* v = vm_named(s, plan.vm)) here = v->host;
  for (const Move& mv : moves) {
    // A draw is named by its time and seed: another seed draws other times.
    const std::string when = mv.drawn
                                 ? fmt::format("the draw at {:.3f} s (seed {})", mv.at_s, s.seed)
                                 : fmt::format("at {} s", mv.at_s);
    if (mv.vm != plan.vm) {
      plan.issues.push_back(issue_at(
          s, mv.key,
          plan.vm.empty()
              ? fmt::format("{}: {} migrates; the {} backend plays migrations of one VM only", when,
                            mv.vm, rules.backend)
              : fmt::format("{}: {} migrates; the {} backend plays migrations of one VM only "
                            "({}, the stream's sender)",
                            when, mv.vm, rules.backend, plan.vm)));
      continue;
    }
    // A draw goes to another host than the one the VM is on then, as the simulator resolves it.
    const std::size_t to = mv.drawn ? (mv.host >= here ? mv.host + 1 : mv.host) : mv.host;
    if (mv.at_s < last + rules.min_gap_s)
      plan.issues.push_back(issue_at(
          s, mv.key,
          fmt::format("{}: the {} backend needs {} s between the start and a migration and "
                      "between migrations ({}){}",
                      when, rules.backend, rules.min_gap_s, rules.gap_why,
                      mv.drawn ? "; pick another seed, a lower rate_per_s or a later start_s"
                               : "")));
    if (to == here)
      plan.issues.push_back(
          issue_at(s, mv.key, fmt::format("{} is on host {} already", mv.vm, to)));
    plan.migrations.push_back({mv.at_s, to, mv.key, mv.drawn});
    last = std::max(last, mv.at_s);
    here = to;
  }
  if (!plan.migrations.empty() && s.duration_s < last + rules.settle_s)
    plan.issues.push_back(
        issue_at(s, "duration_s",
                 fmt::format("the stream must run {} s past the last migration ({} s) on the {} "
                             "backend{}",
                             rules.settle_s, last, rules.backend,
                             plan.migrations.back().drawn ? " (a draw: end the generator earlier "
                                                            "with stop_s)"
                                                          : "")));
  return plan;
}

} // namespace ivmc::guest_results
