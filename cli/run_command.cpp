// `ivmc run`: see run_command.hpp.
#include "run_command.hpp"

#include "set_option.hpp"

#include "ivmc/backends/table.hpp"
#include "ivmc/experiment/load.hpp"
#include "ivmc/experiment/overrides.hpp"
#include "ivmc/experiment/sweep.hpp"
#include "ivmc/experiment/validate.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace ivmc::cli {

CLI::App* add_run(CLI::App& app, RunOptions& o) {
  auto* cmd = app.add_subcommand(
      "run", "run one scenario (a file, `default`, or preset:NAME) on a backend (simulated by "
             "default) and print its summary");
  cmd->add_option("scenario", o.scenario, "scenario file, `default` or `preset:NAME`")
      ->capture_default_str();
  cmd->add_option("--out", o.out, "write results.csv and meta.json into this directory");
  cmd->add_option("--seed", o.seed, "the run's seed (default: the scenario's)");
  add_set_option(*cmd, o.sets, o.scenario, false);
  cmd->add_flag("--force", o.force,
                "with --out: delete results another scenario, backend or ivmc version left there "
                "and start over (without it such a directory is refused, exit 2)");
  cmd->add_flag("--quiet", o.quiet, "print nothing but errors");
  cmd->add_option("--progress-every", o.progress_every_s,
                  "seconds between progress lines on stderr when it is not a terminal (a "
                  "terminal shows one line in place); a run shorter than that shows none")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 3600.0));
  add_backend_options(*cmd, o.backend);
  return cmd;
}

int run_run(const RunOptions& o) {
  // The scenario, then the backend and what it refuses: nothing starts unless all is well.
  experiment::Scenario s;
  std::unique_ptr<experiment::Backend> backend;
  try {
    s = experiment::load_scenario_argument(o.scenario);
    for (const auto& set : o.sets) experiment::apply_override(s, set);
    if (o.seed) s.seed = *o.seed;
    if (const auto issues = experiment::validate(s); !issues.empty())
      throw experiment::ScenarioError(issues);
    auto settings = backend_settings(o.backend, !o.quiet, o.out);
    settings.progress_every_s = o.progress_every_s;
    backend = backends::make_backend(o.backend.name, settings);
    if (const auto issues = backend->check(s); !issues.empty())
      throw experiment::ScenarioError(issues);
  } catch (const experiment::ScenarioError& e) {
    print_issues(e.issues());
    fmt::print(stderr, "ivmc run: nothing ran ({} problem{}{})\n", e.issues().size(),
               e.issues().size() == 1 ? "" : "s",
               backend ? fmt::format(" on the {} backend", backend->name()) : "");
    return 2;
  } catch (const std::invalid_argument& e) { // an unknown backend
    fmt::print(stderr, "ivmc run: {}\n", e.what());
    return 2;
  }

  if (o.out.empty()) {
    experiment::RunResult r;
    try {
      r = backend->run(s, s.seed);
    } catch (const std::exception& e) {
      fmt::print(stderr, "ivmc run: {}\n", e.what());
      return 1;
    }
    if (!o.quiet) std::fputs(r.summary.c_str(), stdout);
    return 0;
  }
  // With --out, a run is a sweep of one point: the same files, written the same way.
  experiment::SweepOptions sweep;
  sweep.seeds = 1;
  sweep.first_seed = s.seed;
  sweep.jobs = 1;
  sweep.out_dir = o.out;
  sweep.force = o.force;
  const std::string summary_path = o.out + "/summary.txt";
  sweep.on_result = [&](std::size_t, std::uint64_t, const experiment::RunResult& r) {
    std::ofstream(summary_path) << r.summary; // for people; a resumed run prints it again
  };
  try {
    experiment::run_sweep(s, sweep, *backend);
  } catch (const experiment::ScenarioError&) {
    throw;
  } catch (const experiment::OutputConflict& e) { // --out holds another scenario's results
    fmt::print(stderr, "ivmc run: nothing ran: {}\n", e.what());
    return 2;
  } catch (const experiment::SweepInterrupted& e) { // SIGINT or SIGTERM: no row was written
    fmt::print(stderr, "ivmc run: {}; nothing written to {}/results.csv\n", e.what(), o.out);
    return 128 + e.signal();
  } catch (const std::runtime_error& e) { // the run failed (its error is in the text)
    fmt::print(stderr, "ivmc run: {}\n", e.what());
    return 1;
  }
  if (!o.quiet) {
    std::ifstream in(summary_path);
    for (std::string line; std::getline(in, line);) fmt::print("{}\n", line);
    fmt::print("results: {}/results.csv, {}/meta.json\n", o.out, o.out);
  }
  return 0;
}

} // namespace ivmc::cli
