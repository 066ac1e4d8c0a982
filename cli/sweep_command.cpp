// `ivmc sweep`: the command line around experiment::run_sweep.
#include "sweep_command.hpp"

#include "set_option.hpp"

#include "ivmc/backends/table.hpp"
#include "ivmc/experiment/load.hpp"
#include "ivmc/experiment/overrides.hpp"
#include "ivmc/experiment/summary.hpp"
#include "ivmc/experiment/sweep.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <stdexcept>
#include <utility>

namespace ivmc::cli {
namespace {

// "key=v1,v2,..." -> key, values.
std::pair<std::string, std::vector<std::string>> parse_param(const std::string& arg) {
  const auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size())
    throw std::invalid_argument("--param " + arg + ": expected KEY=VALUE1,VALUE2,...");
  std::pair<std::string, std::vector<std::string>> param{arg.substr(0, eq), {}};
  std::size_t start = eq + 1;
  while (true) {
    const auto comma = arg.find(',', start);
    const std::string value =
        arg.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (value.empty()) throw std::invalid_argument("--param " + arg + ": an empty value");
    param.second.push_back(value);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return param;
}

// results/<scenario name>-<YYYYmmdd-HHMMSS>, the name reduced to characters safe in a path.
std::string default_out_dir(const std::string& name) {
  std::string safe;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    safe += ok ? c : '_';
  }
  if (safe.empty() || safe[0] == '.') safe = "scenario" + safe;
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  return "results/" + safe + "-" + stamp;
}

} // namespace

CLI::App* add_sweep(CLI::App& parent, SweepArgs& a) {
  auto& app = *parent.add_subcommand(
      "sweep", "run a scenario over every combination of parameter values, several seeds each, in "
               "parallel processes; resumable (docs/results.md)");
  app.add_option("scenario", a.scenario,
                 "a scenario file, \"default\", or \"preset:NAME\" (required)");
  app.add_option("--param", a.params,
                 "KEY=V1,V2,...: a scenario key and the values it takes (repeatable; every "
                 "combination runs, the first --param varying slowest)")
      ->allow_extra_args(false);
  app.add_option("--seeds", a.seeds, "seeds per point")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1'000'000u));
  app.add_option_function<std::uint64_t>(
      "--first-seed", [&a](const std::uint64_t& seed) { a.first_seed = seed; },
      "the first seed (default: the scenario's seed)");
  app.add_option("--jobs,-j", a.jobs,
                 "runs at once (0: the backend's default: one per CPU simulated, 1 on real "
                 "backends)")
      ->capture_default_str();
  app.add_option("--out", a.out,
                 "output directory (default: results/<scenario name>-<YYYYmmdd-HHMMSS>); an "
                 "existing one resumes its sweep (only the same scenario's: another is refused)");
  app.add_flag("--force", a.force,
               "delete the results another scenario, backend or ivmc version left in --out and "
               "start over");
  add_set_option(app, a.sets, a.scenario, true); // changes the scenario before sweeping
  add_backend_options(app, a.backend);
  return &app;
}

int sweep_main(const SweepArgs& a) {
  experiment::Scenario scenario;
  std::unique_ptr<experiment::Backend> backend;
  std::string out_dir;
  try {
    scenario = experiment::load_scenario_argument(a.scenario);
    for (const auto& s : a.sets) experiment::apply_override(scenario, s);
    // The runs' logs (real backends) go next to results.csv; the sweep shows its own progress.
    out_dir = a.out.empty() ? default_out_dir(scenario.name) : a.out;
    backend = backends::make_backend(a.backend.name, backend_settings(a.backend, false, out_dir));
  } catch (const experiment::ScenarioError& e) {
    print_issues(e.issues());
    return 2;
  } catch (const std::invalid_argument& e) { // an unknown backend
    fmt::print(stderr, "ivmc sweep: {}\n", e.what());
    return 2;
  }

  experiment::SweepOptions o;
  try {
    for (const auto& p : a.params) o.params.push_back(parse_param(p));
  } catch (const std::invalid_argument& e) { // a malformed --param
    fmt::print(stderr, "ivmc sweep: {}\n", e.what());
    return 2;
  }
  o.seeds = a.seeds;
  o.first_seed = a.first_seed.value_or(scenario.seed);
  o.jobs = a.jobs;
  o.out_dir = out_dir;
  o.force = a.force;
  // Progress on stderr always: in place on a terminal, a line every 5 s into a log.
  o.progress = true;
  o.progress_every_s = isatty(STDERR_FILENO) != 0 ? 0 : 5;

  // With the default, timestamped directory, "the same command" would start a new sweep.
  const std::string resume =
      a.out.empty() ? "re-run the same command with --out " + o.out_dir : "re-run the same command";
  try {
    const std::size_t made = experiment::run_sweep(scenario, o, *backend);
    fmt::print("sweep: {} runs made; results in {}/results.csv\n", made, o.out_dir);
    // Per point: seeds, mean and 95% CI of the headline metrics (docs/results.md "Summary").
    std::vector<std::string> keys;
    for (const auto& [key, values] : o.params) keys.push_back(key);
    const auto table =
        experiment::summary_table(experiment::read_results(o.out_dir + "/results.csv"), keys);
    if (!table.empty()) fmt::print("\n{}", table);
    return 0;
  } catch (const experiment::SweepInterrupted& e) {
    fmt::print(stderr, "interrupted: {} of {} runs done; {} to resume\n", e.done(), e.total(),
               resume);
    return 128 + e.signal();
  } catch (const experiment::OutputConflict& e) { // --out holds another sweep's results
    fmt::print(stderr, "ivmc sweep: nothing ran: {}\n", e.what());
    return 2;
  } catch (const std::invalid_argument& e) { // --param seed=..., a value twice: input errors
    fmt::print(stderr, "ivmc sweep: nothing ran: {}\n", e.what());
    return 2;
  } catch (const experiment::ScenarioError& e) { // a point invalid, or refused by the backend
    print_issues(e.issues());
    fmt::print(stderr, "ivmc sweep: nothing ran ({} problem{} on the {} backend)\n",
               e.issues().size(), e.issues().size() == 1 ? "" : "s", backend->name());
    return 2;
  } catch (const std::runtime_error& e) {
    fmt::print(stderr, "ivmc: {}\n", e.what());
    if (a.out.empty() && std::filesystem::exists(o.out_dir + "/results.csv"))
      fmt::print(stderr, "ivmc: the sweep is in {}: {} to resume it\n", o.out_dir, resume);
    return 1;
  }
}

} // namespace ivmc::cli
