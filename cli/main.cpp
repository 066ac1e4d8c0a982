// ivmc: the command line. With no subcommand it runs the main job on its embedded default: the
// default scenario, simulated.
#include "calibrate_command.hpp"
#include "exec_command.hpp"
#include "ivmc/bench/bench.hpp"
#include "ivmc/experiment/load.hpp"
#include "ivmc/experiment/overrides.hpp"
#include "ivmc/experiment/presets.hpp"
#include "ivmc/experiment/validate.hpp"
#include "ivmc/kvm/ivshmem_server.hpp"
#include "ivmc/kvm/ivshmem_server_cli.hpp"
#include "plot_command.hpp"
#include "run_command.hpp"
#include "set_option.hpp"
#include "summarize_command.hpp"
#include "sweep_command.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

namespace {

void add_bench(CLI::App& app, ivmc::bench::BenchOptions& o, bool& json) {
  app.add_flag("--json", json, "print one JSON object instead of the table");
  app.add_option("--sizes", o.sizes, "message sizes in bytes")
      ->capture_default_str()
      ->delimiter(',');
  app.add_option("--seconds", o.seconds_per_point, "seconds per throughput point")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 60.0));
  app.add_option("--repeats", o.repeats, "runs per figure (the median is reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 99));
  app.add_option("--ring-bytes", o.ring_bytes, "ring size per direction, a power of two")
      ->capture_default_str();
  app.add_option("--rtt-iterations", o.rtt_iterations, "round trips per latency figure")
      ->capture_default_str()
      ->check(CLI::Range(100, 10'000'000));
  app.add_option("--cpus", o.cpu_parent, "CPU of the measuring process")->capture_default_str();
  app.add_option("--peer-cpu", o.cpu_child, "CPU of the peer process")->capture_default_str();
}

int run_bench(ivmc::bench::BenchOptions o, bool json) {
  o.progress = !json && isatty(STDERR_FILENO);
  const auto report = ivmc::bench::run_bench(o);
  std::fputs((json ? ivmc::bench::to_json(report) + "\n" : ivmc::bench::to_table(report)).c_str(),
             stdout);
  return 0;
}

// `ivmc validate SCENARIO [--set KEY=VALUE]...`
struct ValidateOptions {
  std::string scenario;
  std::vector<std::string> sets;
};

CLI::App* add_validate(CLI::App& app, ValidateOptions& o) {
  auto* cmd = app.add_subcommand(
      "validate", "check a scenario (a file, default, or preset:NAME) and report every problem");
  cmd->add_option("scenario", o.scenario, "scenario file, `default` or `preset:NAME` (required)");
  ivmc::cli::add_set_option(*cmd, o.sets, o.scenario, true);
  return cmd;
}

// 0: valid; 2: every issue printed to stderr as "where: what".
int run_validate(const ValidateOptions& o) {
  std::vector<ivmc::experiment::ScenarioIssue> issues;
  try {
    auto s = ivmc::experiment::load_scenario_argument(o.scenario);
    for (const auto& set : o.sets) ivmc::experiment::apply_override(s, set);
    issues = ivmc::experiment::validate(s);
    if (issues.empty()) {
      fmt::print("{}: ok ({} VMs, {} workloads, {} events)\n", o.scenario, s.vms.size(),
                 s.workloads.size(), s.events.size());
      return 0;
    }
  } catch (const ivmc::experiment::ScenarioError& e) {
    issues = e.issues();
  }
  for (const auto& i : issues) fmt::print(stderr, "{}: {}\n", i.where, i.what);
  return 2;
}

// `ivmc presets`: the embedded presets, one line each.
int run_presets() {
  const auto list = ivmc::experiment::presets();
  std::size_t name_width = 4, system_width = 6;
  for (const auto& p : list) {
    name_width = std::max(name_width, p.name.size());
    system_width = std::max(system_width, p.system.size());
  }
  fmt::print("{:<{}}  {:<{}}  {}\n", "name", name_width, "system", system_width, "summary");
  for (const auto& p : list)
    fmt::print("{:<{}}  {:<{}}  {}\n", p.name, name_width, p.system, system_width, p.summary);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"ivmc: shared-memory communication between co-resident VMs.\n"
               "With no subcommand: simulates the embedded default scenario (ivmc run default)."};
  app.require_subcommand(0, 1);

  ivmc::bench::BenchOptions bench_options;
  bool json = false;
  auto* bench = app.add_subcommand(
      "bench", "measure the ring against memcpy, a cache-line probe, TCP and UNIX sockets");
  add_bench(*bench, bench_options, json);

  ivmc::kvm::IvshmemServerOptions server_options;
  auto* server = app.add_subcommand(
      "ivshmem-server", "serve a shared region and doorbells to host peers and QEMU guests");
  ivmc::kvm::add_ivshmem_server_options(*server, server_options);

  ValidateOptions validate_options;
  auto* validate = add_validate(app, validate_options);
  auto* presets =
      app.add_subcommand("presets", "list the embedded presets (use one as preset:NAME)");

  ivmc::cli::RunOptions run_options;
  auto* run = ivmc::cli::add_run(app, run_options);

  ivmc::cli::SweepArgs sweep_args;
  auto* sweep = ivmc::cli::add_sweep(app, sweep_args);

  ivmc::cli::SummarizeArgs summarize_args;
  auto* summarize = ivmc::cli::add_summarize(app, summarize_args);

  ivmc::cli::PlotArgs plot_args;
  auto* plot = ivmc::cli::add_plot(app, plot_args);

  ivmc::cli::ExecArgs exec_args;
  auto* exec = ivmc::cli::add_exec(app, exec_args);

  ivmc::cli::CalibrateArgs calibrate_args;
  auto* calibrate = ivmc::cli::add_calibrate(app, calibrate_args);

  // One rule for exits (README): 0 done, 1 a run failed, 2 any input error, the command
  // line's included (CLI11's own codes would be 105..115).
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    if (*run) return ivmc::cli::run_run(run_options);
    if (*sweep) return ivmc::cli::sweep_main(sweep_args);
    if (*summarize) return ivmc::cli::summarize_main(summarize_args);
    if (*plot) return ivmc::cli::plot_main(plot_args);
    if (*exec) return ivmc::cli::exec_main(exec_args);
    if (*calibrate) return ivmc::cli::calibrate_main(calibrate_args);
    if (*validate) return run_validate(validate_options);
    if (*presets) return run_presets();
    if (*server) return ivmc::kvm::ivshmem_server_main(server_options);
    if (*bench) return run_bench(bench_options, json);
    return ivmc::cli::run_run(run_options); // the main job: the default scenario
  } catch (const std::exception& e) {
    fmt::print(stderr, "ivmc: {}\n", e.what());
    return 1;
  }
}
