// The sweep's scheduler (sweep.hpp): the runs left to do, at most `jobs` children at once (each
// one run of the backend, child_run.hpp), a row for each that lands (results_file.hpp), and a
// clean stop on SIGINT or SIGTERM. The plan is sweep_plan.hpp; meta.json is sweep_meta.hpp.
#include "ivmc/experiment/sweep.hpp"

#include "changes_file.hpp"
#include "csv.hpp"
#include "out_fingerprint.hpp"
#include "results_file.hpp"
#include "sweep_meta.hpp"
#include "sweep_plan.hpp"
#include "sweep_progress.hpp"

#include "ivmc/experiment/child_run.hpp"

#include <fmt/format.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>

namespace ivmc::experiment {

SweepInterrupted::SweepInterrupted(std::size_t done, std::size_t total, int signal)
    : std::runtime_error(fmt::format("interrupted by {}: {} of {} runs done",
                                     signal == SIGTERM ? "SIGTERM" : "SIGINT", done, total)),
      done_(done), total_(total), signal_(signal) {}

namespace {

using namespace detail;

// SIGINT and SIGTERM in the parent only set a flag; the loop stops launching, kills its
// children, and run_sweep throws SweepInterrupted. The previous handlers come back at the end.
volatile sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int sig) {
  g_signal = sig;
}

class StopSignals {
public:
  StopSignals() {
    g_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: poll() returns early
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

// One run under way. Whatever leaves run_sweep early (an exception, a signal) kills and reaps
// the ones still running (ChildRun's destructor).
struct Running {
  std::size_t point = 0;
  std::uint64_t seed = 0;
  std::unique_ptr<ChildRun> child;
};

// "  point 0 (k=v), seed 3:\n    where: what\n" per refusal.
std::string list_refusals(const std::vector<Refusal>& refusals, const CrossProduct& points) {
  std::string out;
  for (const Refusal& r : refusals) {
    out += fmt::format("  point {} ({}), seed {}:\n", r.point, points.label(r.point), r.seed);
    for (const ScenarioIssue& i : r.issues) out += fmt::format("    {}: {}\n", i.where, i.what);
  }
  return out;
}

} // namespace

std::size_t run_sweep(const Scenario& base, const SweepOptions& options, Backend& backend) {
  check_options(options);
  const CrossProduct points(options);
  check_points(base, points, options.first_seed, backend);
  // Runs the backend refuses for their seed alone (a real backend cannot play what that seed's
  // generators drew; the simulator would): not made, listed now, at the end and in meta.json,
  // while the others are. A sweep none of whose runs can be made refuses like a single run.
  std::vector<std::pair<std::size_t, std::uint64_t>> runs;
  for (std::size_t p = 0; p < points.count(); ++p)
    for (std::uint64_t s = 0; s < options.seeds; ++s) runs.emplace_back(p, options.first_seed + s);
  const std::vector<Refusal> refusals = refused_runs(base, points, runs, backend);
  if (!refusals.empty() && refusals.size() == runs.size()) {
    std::vector<ScenarioIssue> all;
    for (const Refusal& r : refusals)
      for (ScenarioIssue i : r.issues) {
        i.where = fmt::format("sweep point {} ({}), seed {}: {}", r.point, points.label(r.point),
                              r.seed, i.where);
        all.push_back(std::move(i));
      }
    throw ScenarioError(std::move(all));
  }
  std::set<std::pair<std::size_t, std::uint64_t>> refused_keys;
  for (const Refusal& r : refusals) refused_keys.emplace(r.point, r.seed);

  unsigned jobs = options.jobs ? options.jobs : backend.default_jobs();
  if (jobs == 0) jobs = 1;

  const std::string dir = options.out_dir;
  std::filesystem::create_directories(dir);
  const std::string csv_path = dir + "/results.csv";
  const Fingerprint fingerprint = fingerprint_of(base, backend.name());
  claim_output(dir, fingerprint, options.force); // before any row is read or meta.json written
  const Existing existing = load_existing(csv_path, base, options);

  // What is left to do, in (point, seed) order.
  std::vector<std::pair<std::size_t, std::uint64_t>> todo;
  for (std::size_t p = 0; p < points.count(); ++p) {
    const auto values = points.values(p);
    for (std::uint64_t s = 0; s < options.seeds; ++s) {
      const std::uint64_t seed = options.first_seed + s;
      if (!existing.point_of.count({values, seed}) && !refused_keys.count({p, seed}))
        todo.emplace_back(p, seed);
    }
  }
  const std::size_t total = points.count() * options.seeds;
  std::size_t done = total - refusals.size() - todo.size();
  std::size_t foreign = 0, renumbered = 0;
  for (const auto& [key, point] : existing.point_of) {
    const std::size_t p = points.index(key.first);
    if (p == points.count() || key.second < options.first_seed ||
        key.second - options.first_seed >= options.seeds) {
      ++foreign;
    } else if (p != point) {
      ++renumbered;
    }
  }
  if (foreign > 0)
    std::fprintf(stderr,
                 "sweep: note: %s holds %zu rows that are not runs of this sweep; they stay\n",
                 csv_path.c_str(), foreign);
  if (!refusals.empty())
    std::fprintf(stderr,
                 "sweep: note: the %s backend refuses %zu of %zu runs for their seed alone (what "
                 "that seed's generators drew); the others are made:\n%s",
                 std::string(backend.name()).c_str(), refusals.size(), total,
                 list_refusals(refusals, points).c_str());
  if (renumbered > 0)
    std::fprintf(
        stderr,
        "sweep: note: %zu earlier rows of %s were numbered by other lists of values; their "
        "point column follows those lists\n",
        renumbered, csv_path.c_str());

  Meta meta;
  meta.base = &base;
  meta.options = &options;
  meta.points = &points;
  meta.backend = backend.name();
  meta.fingerprint = fingerprint.digest();
  meta.jobs = jobs;
  meta.started = utc_now();
  meta.t0 = std::chrono::steady_clock::now();
  meta.total = total;
  meta.done = meta.skipped = done;
  for (const Refusal& r : refusals) {
    std::string what;
    for (const ScenarioIssue& i : r.issues)
      what += fmt::format("{}{}: {}", what.empty() ? "" : "\n", i.where, i.what);
    meta.refused.push_back({r.point, r.seed, what});
  }
  write_meta(dir, meta);

  ResultsFile results(csv_path, existing, options.params.size());
  std::vector<std::string> param_keys;
  for (const auto& [key, values] : options.params) param_keys.push_back(key);
  std::set<RunKey> done_keys;
  for (const auto& [key, point] : existing.point_of) done_keys.insert(key);
  ChangesFile changes(dir + "/changes.csv", param_keys, done_keys);

  // A finished child's row, or the reason it has none.
  const auto land = [&](const Running& r) {
    const auto result = r.child->result();
    if (!result) {
      const int status = r.child->wait_status();
      if (g_signal && WIFSIGNALED(status) &&
          (WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGTERM))
        return; // the terminal's Ctrl-C reached the child too: interrupted, not failed
      meta.failed.push_back({r.point, r.seed, r.child->failure()});
      return;
    }
    // A run's change rows land before its results row (changes_file.hpp).
    std::optional<std::uint64_t> changes_before;
    if (result->changes_recorded)
      changes_before = changes.append(r.point, r.seed, points.values(r.point), result->changes);
    const std::string refused =
        results.append(r.point, r.seed, param_keys, points.values(r.point), *result);
    if (!refused.empty()) {
      if (changes_before) changes.undo(*changes_before);
      meta.failed.push_back({r.point, r.seed, refused});
      return;
    }
    ++done;
    ++meta.made;
    if (options.on_result) options.on_result(r.point, r.seed, *result);
  };

  std::vector<Running> running;
  // Lands every child that has ended.
  const auto reap_finished = [&] {
    for (std::size_t i = 0; i < running.size();) {
      if (!running[i].child->try_reap()) {
        ++i;
        continue;
      }
      const Running finished = std::move(running[i]);
      running.erase(running.begin() + static_cast<std::ptrdiff_t>(i));
      land(finished);
      meta.done = done;
    }
  };

  Progress progress(options.progress, total - refusals.size(), done, options.progress_every_s);
  StopSignals stop_signals;
  std::size_t next = 0;
  progress.update(done, true);

  while (!g_signal && (next < todo.size() || !running.empty())) {
    while (!g_signal && running.size() < jobs && next < todo.size()) {
      const auto [point, seed] = todo[next++];
      const Scenario scenario = points.scenario(base, point, seed);
      std::vector<int> others{results.fd()}; // a child holds no other child's pipe
      if (changes.fd() >= 0) others.push_back(changes.fd());
      for (const auto& r : running) others.push_back(r.child->fd());
      const std::uint64_t run_seed = seed;
      running.push_back(
          {point, seed,
           std::make_unique<ChildRun>(
               [&backend, &scenario, run_seed] { return backend.run(scenario, run_seed); },
               others)});
    }

    // Wait for output, an end of file, or a signal; poll briefly while an ended pipe's child
    // has not been reaped yet.
    std::vector<pollfd> pfds;
    bool exiting = false;
    for (const auto& r : running) {
      if (r.child->at_eof())
        exiting = true;
      else
        pfds.push_back({r.child->fd(), POLLIN, 0});
    }
    ::poll(pfds.data(), pfds.size(), exiting ? 5 : 100);
    for (auto& r : running) r.child->read_available();

    reap_finished();
    progress.update(done);
  }
  if (g_signal) reap_finished(); // rows that were ready keep; the rest are killed
  running.clear();

  const int sig = g_signal;
  progress.finish(done);
  std::sort(meta.failed.begin(), meta.failed.end(), [](const Failure& a, const Failure& b) {
    return std::pair(a.point, a.seed) < std::pair(b.point, b.seed);
  });
  meta.done = done;
  meta.state = sig ? "interrupted" : meta.failed.empty() ? "complete" : "failed";
  write_meta(dir, meta);

  if (sig) throw SweepInterrupted(done, total, sig);
  // The summary says what was not made and why, after the progress and before the table.
  if (!refusals.empty())
    std::fprintf(stderr,
                 "sweep: %zu of %zu runs were refused by the %s backend for their seed and not "
                 "made (listed in %s/meta.json, \"refused\"); compare backends over the seeds "
                 "each made:\n%s",
                 refusals.size(), total, std::string(backend.name()).c_str(), dir.c_str(),
                 list_refusals(refusals, points).c_str());
  if (!meta.failed.empty()) {
    std::string msg = fmt::format("sweep: {} of {} runs failed; {} completed, their rows are in {} "
                                  "(running the same sweep again retries the failed ones):",
                                  meta.failed.size(), todo.size(), meta.made, csv_path);
    for (const auto& f : meta.failed)
      msg += fmt::format("\n  point {} ({}), seed {}: {}", f.point, points.label(f.point), f.seed,
                         f.what);
    throw std::runtime_error(msg);
  }
  return meta.made;
}

} // namespace ivmc::experiment
