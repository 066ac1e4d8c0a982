// A sweep: a scenario over the cross product of parameter values, each point for several seeds,
// every (point, seed) one run of a backend in its own child process (child_run.hpp), resumable
// from its results.csv (docs/results.md).
#pragma once

#include "ivmc/experiment/backend.hpp"
#include "ivmc/experiment/results.hpp"
#include "ivmc/experiment/scenario.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace ivmc::experiment {

struct SweepOptions {
  std::vector<std::pair<std::string, std::vector<std::string>>> params; // key, values
  std::uint32_t seeds = 1;      // seeds first_seed, first_seed+1, ...
  std::uint64_t first_seed = 1; // default: the scenario's seed
  unsigned jobs = 0;            // concurrent child processes; 0: the backend's default_jobs()
  std::string out_dir;          // results.csv and meta.json go here
  bool progress = false;        // print points done, rate and time left to stderr
  // With progress: > 0 prints a new line every that many seconds (stderr into a log), 0 one
  // line rewritten in place (a terminal).
  double progress_every_s = 0;
  // Delete out_dir's results.csv and meta.json first and start over, instead of refusing an
  // output directory that another scenario, backend or ivmc version made (OutputConflict).
  bool force = false;
  // Called in this process for each run whose row landed (its point, seed and result, summary
  // included).
  std::function<void(std::size_t point, std::uint64_t seed, const RunResult&)> on_result;
};

// Runs every (point, seed) not yet in out_dir/results.csv on `backend`, each in its own child
// process, appending one row per completed run. Returns the number of runs made. Before anything
// runs, every point must be valid and playable on the backend (validate and Backend::check):
// throws ScenarioError naming the point otherwise. A run the backend refuses for its seed alone
// (ScenarioIssue::per_seed: what that seed's generators drew) is not made: listed on stderr at
// the start and the end and in meta.json's `refused`, while the others are made; when every
// run is refused so, throws ScenarioError naming each. Throws std::runtime_error listing the failed
// runs (the others' rows are kept) when some fail. Rows already in results.csv are reused only
// when meta.json records the same base scenario, backend and ivmc version (else OutputConflict).
std::size_t run_sweep(const Scenario& base, const SweepOptions& options, Backend& backend);

// Thrown by run_sweep, before anything runs or is written, when out_dir holds results that this
// sweep must not resume: another scenario (its canonical TOML, the seed aside), another backend,
// another ivmc version, other parameters, or rows without a recorded fingerprint. what() names
// the differences; SweepOptions::force starts over instead.
class OutputConflict : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Thrown by run_sweep when SIGINT or SIGTERM stopped it: no run was started after the signal,
// the running children were killed and reaped, and every completed row is in results.csv.
// Running the same sweep again resumes it.
class SweepInterrupted : public std::runtime_error {
public:
  SweepInterrupted(std::size_t done, std::size_t total, int signal);
  std::size_t done() const { return done_; }   // runs of this sweep in results.csv
  std::size_t total() const { return total_; } // runs of this sweep: points x seeds
  int signal() const { return signal_; }       // SIGINT or SIGTERM

private:
  std::size_t done_, total_;
  int signal_;
};

} // namespace ivmc::experiment
