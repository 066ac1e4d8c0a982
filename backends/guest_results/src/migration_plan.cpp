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

double precopy_s(const Scenario& s, const std::string& vm) {
  const auto* v = vm_named(s, vm);
  if (v == nullptr) return 0;
  // As the host backend's pre-copy, and the simulator's stage one (the RAM at the migration
  // speed, platform.migration_gbps * 1e9 / 8 bytes/s), which its migration cannot beat.
  return static_cast<double>(v->ram_mib) * 1048576.0 * 8.0 / (s.platform.migration_gbps * 1e9);
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
  // Issues a draw causes hold for this seed only (ScenarioIssue::per_seed).
  auto refuse = [&](const std::string& key, std::string what, bool per_seed) {
    plan.issues.push_back(issue_at(s, key, std::move(what)));
    plan.issues.back().per_seed = per_seed;
  };
  const double precopy = precopy_s(s, plan.vm);
  bool last_drawn = false; // the migration at `last` was drawn
  for (const Move& mv : moves) {
    // A draw is named by its time and seed: another seed draws other times.
    const std::string when = mv.drawn
                                 ? fmt::format("the draw at {:.3f} s (seed {})", mv.at_s, s.seed)
                                 : fmt::format("at {} s", mv.at_s);
    if (mv.vm != plan.vm) {
      refuse(mv.key,
             plan.vm.empty()
                 ? fmt::format("{}: {} migrates; the {} backend plays migrations of one VM only",
                               when, mv.vm, rules.backend)
                 : fmt::format("{}: {} migrates; the {} backend plays migrations of one VM only "
                               "({}, the stream's sender)",
                               when, mv.vm, rules.backend, plan.vm),
             mv.drawn);
      continue;
    }
    // The VM is still migrating (its pre-copy at least): the simulator skips this draw, and so
    // does every backend.
    if (mv.drawn && !plan.migrations.empty() && mv.at_s < last + precopy) {
      plan.skipped.push_back({mv.at_s, mv.key, last});
      continue;
    }
    // A draw goes to another host than the one the VM is on then, as the simulator resolves it.
    const std::size_t to = mv.drawn ? (mv.host >= here ? mv.host + 1 : mv.host) : mv.host;
    if (mv.at_s < last + rules.min_gap_s)
      refuse(
          mv.key,
          fmt::format("{}: the {} backend needs {} s between the start and a migration and "
                      "between migrations ({}){}",
                      when, rules.backend, rules.min_gap_s, rules.gap_why,
                      mv.drawn ? "; pick another seed, a lower rate_per_s or a later start_s" : ""),
          mv.drawn || last_drawn);
    if (to == here) refuse(mv.key, fmt::format("{} is on host {} already", mv.vm, to), false);
    plan.migrations.push_back({mv.at_s, to, mv.key, mv.drawn});
    last = std::max(last, mv.at_s);
    last_drawn = mv.drawn;
    here = to;
  }
  if (!plan.migrations.empty() && s.duration_s < last + rules.settle_s)
    refuse("duration_s",
           fmt::format("the stream must run {} s past the last migration ({} s) on the {} "
                       "backend{}",
                       rules.settle_s, last, rules.backend,
                       last_drawn ? " (a draw: end the generator earlier with stop_s)" : ""),
           last_drawn);

  // With several migrations the simulator's must have ended before the run plays the next, or
  // it would skip one the run plays: the pre-copy (the least it lasts) within half the gap.
  std::size_t scripted = 0;
  for (const Move& mv : moves) scripted += !mv.drawn && mv.vm == plan.vm ? 1 : 0;
  bool drawn_moves = false;
  for (const auto& g : s.generators) drawn_moves = drawn_moves || g.kind == EventKind::migrate;
  if ((scripted >= 2 || (rules.plays_draws && drawn_moves)) && precopy > rules.min_gap_s / 2) {
    std::size_t i = 0;
    while (i < s.vms.size() && s.vms[i].name != plan.vm) ++i;
    refuse(fmt::format("vm[{}].ram_mib", i),
           fmt::format("{}'s {} MiB take {:.2f} s to copy once at platform.migration_gbps = {}, "
                       "the least the simulator's migration of it lasts: with several "
                       "migrations the {} backend plays at most {} s (half its {} s between "
                       "migrations), so that the simulator has ended a migration before the "
                       "next one and both play the same ones; a smaller ram_mib or a larger "
                       "migration_gbps",
                       plan.vm, s.vms[i].ram_mib, precopy, s.platform.migration_gbps, rules.backend,
                       rules.min_gap_s / 2, rules.min_gap_s),
           false);
  }
  return plan;
}

} // namespace ivmc::guest_results
