// `ivmc run`: see run_command.hpp.
#include "run_command.hpp"

#include "ivmc/sim/run.hpp"
#include "ivmc/sim/scenario.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace ivmc::cli {

CLI::App* add_run(CLI::App& app, RunOptions& o) {
  auto* cmd = app.add_subcommand(
      "run", "simulate one scenario (a file, `default`, or preset:NAME) and print its summary");
  cmd->add_option("scenario", o.scenario, "scenario file, `default` or `preset:NAME`")
      ->capture_default_str();
  cmd->add_option("--out", o.out, "write results.csv and meta.json into this directory");
  cmd->add_option("--seed", o.seed, "the run's seed (default: the scenario's)");
  cmd->add_option("--set", o.sets, "override KEY=VALUE (scenarios/FORMAT.md), in order")
      ->allow_extra_args(false);
  cmd->add_flag("--quiet", o.quiet, "print nothing but errors");
  return cmd;
}

int run_run(const RunOptions& o) {
  sim::Scenario s;
  try {
    s = sim::load_scenario_argument(o.scenario);
    for (const auto& set : o.sets) sim::apply_override(s, set);
    if (o.seed) s.seed = *o.seed;
    if (const auto issues = sim::validate(s); !issues.empty()) throw sim::ScenarioError(issues);
  } catch (const sim::ScenarioError& e) {
    for (const auto& i : e.issues()) fmt::print(stderr, "{}: {}\n", i.where, i.what);
    fmt::print(stderr, "ivmc run: nothing ran ({} problem{})\n", e.issues().size(),
               e.issues().size() == 1 ? "" : "s");
    return 2;
  }
  if (o.out.empty()) {
    const sim::RunResult r = sim::run_scenario(s);
    if (!o.quiet) std::fputs(r.summary.c_str(), stdout);
    return 0;
  }
  // With --out, a run is a sweep of one point: the same files, written the same way.
  sim::SweepOptions sweep;
  sweep.seeds = 1;
  sweep.first_seed = s.seed;
  sweep.jobs = 1;
  sweep.out_dir = o.out;
  std::string summary;
  const std::string summary_path = o.out + "/summary.txt";
  sim::run_sweep(s, sweep, [&](const sim::Scenario& point) {
    sim::RunResult r = sim::run_scenario(point);
    std::ofstream(summary_path) << r.summary; // from the child: its summary for people
    return r;
  });
  if (!o.quiet) {
    std::ifstream in(summary_path);
    std::string line;
    while (std::getline(in, line)) fmt::print("{}\n", line);
    fmt::print("results: {}/results.csv, {}/meta.json\n", o.out, o.out);
  }
  return 0;
}

} // namespace ivmc::cli
