// `ivmc run`: see run_command.hpp.
#include "run_command.hpp"

#include "ivmc/host/host_backend.hpp"
#include "ivmc/sim/run.hpp"
#include "ivmc/sim/scenario.hpp"
#ifdef IVMC_HAVE_KVM_RUN
#include "guest_results.hpp"
#include "kvm_run.hpp"
#endif
#ifdef IVMC_HAVE_XEN_RUN
#include "xen_run.hpp"
#endif

#include <unistd.h>

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
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
  cmd->add_option("--backend", o.backend,
                  "sim: simulate; kvm: run the workloads on real QEMU guests, one at a time, "
                  "into the same results.csv schema; xen: the same between domains of a real "
                  "Xen hypervisor booted under QEMU")
      ->check(CLI::IsMember({"sim", "host", "kvm", "xen"}))
      ->capture_default_str();
  cmd->add_flag("--ignore-events", o.ignore_events,
                "kvm, xen: run the workloads with the initial placement even if the scenario has "
                "[[event]]s or [[generator]]s (they are not played)");
  cmd->add_option("--guest-bytes,--kvm-bytes", o.guest_bytes, "kvm, xen: bytes per stream workload")
      ->capture_default_str();
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
  sim::PointRunner runner = sim::run_scenario;
  // The real backends: their image under IVMC_CACHE (default ~/.cache/ivmc), their logs under
  // --out (or /tmp), and what they cannot run refused before any guest starts.
  [[maybe_unused]] auto cache_dir = [](const char* leaf) {
    const char* cache = std::getenv("IVMC_CACHE");
    const char* home = std::getenv("HOME");
    return (cache && *cache ? std::string(cache)
                            : std::string(home && *home ? home : "/root") + "/.cache/ivmc") +
           "/" + leaf;
  };
  [[maybe_unused]] auto log_dir = [&](const char* leaf) {
    return o.out.empty() ? "/tmp/ivmc-run-logs-" + std::to_string(::getpid()) : o.out + "/" + leaf;
  };
  try {
    if (o.backend == "host") {
      if (const auto issues = host::check(s); !issues.empty()) throw sim::ScenarioError(issues);
      const bool progress = !o.quiet;
      runner = [progress](const sim::Scenario& point) {
        return host::run_on_host(point, point.seed, progress);
      };
    }
    if (o.backend == "kvm") {
#ifdef IVMC_HAVE_KVM_RUN
      KvmRunOptions k;
      k.image_dir = cache_dir("run-image");
      k.log_dir = log_dir("guest-logs");
      k.stream_bytes = o.guest_bytes;
      k.ignore_events = o.ignore_events;
      k.progress = !o.quiet;
      refuse_unplayed_events(s, o.ignore_events, "kvm");
      runner = [k](const sim::Scenario& point) { return run_on_kvm(point, k); };
#else
      throw std::runtime_error("this build has no guest agent (a sanitizer build?): no kvm "
                               "backend");
#endif
    }
    if (o.backend == "xen") {
#ifdef IVMC_HAVE_XEN_RUN
      XenRunOptions x;
      x.image_dir = cache_dir("xen-run-image");
      x.log_dir = log_dir("xen-logs");
      x.stream_bytes = o.guest_bytes;
      x.ignore_events = o.ignore_events;
      x.progress = !o.quiet;
      refuse_unplayed_events(s, o.ignore_events, "xen");
      (void)xen_plan(s, x); // refuse what cannot run before a minute of booting
      runner = [x](const sim::Scenario& point) { return run_on_xen(point, x); };
#else
      throw std::runtime_error("this build has no Xen agent (no libxen-dev, or a sanitizer "
                               "build): no xen backend");
#endif
    }
  } catch (const sim::ScenarioError& e) {
    for (const auto& i : e.issues()) fmt::print(stderr, "{}: {}\n", i.where, i.what);
    fmt::print(stderr, "ivmc run: nothing ran\n");
    return 2;
  } catch (const std::runtime_error& e) {
    fmt::print(stderr, "ivmc run: {}\n", e.what());
    return 2;
  }
  if (o.out.empty()) {
    sim::RunResult r;
    try {
      r = runner(s);
    } catch (const std::exception& e) {
      fmt::print(stderr, "ivmc run: {}\n", e.what());
      return 1;
    }
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
  try {
    sim::run_sweep(s, sweep, [&](const sim::Scenario& point) {
      sim::RunResult r = runner(point);
      std::ofstream(summary_path) << r.summary; // from the child: its summary for people
      return r;
    });
  } catch (const sim::ScenarioError&) {
    throw;
  } catch (const std::runtime_error& e) { // the run failed (its error is in the text)
    fmt::print(stderr, "ivmc run: {}\n", e.what());
    return 1;
  }
  if (!o.quiet) {
    std::ifstream in(summary_path);
    std::string line;
    while (std::getline(in, line)) fmt::print("{}\n", line);
    fmt::print("results: {}/results.csv, {}/meta.json\n", o.out, o.out);
  }
  return 0;
}

} // namespace ivmc::cli
