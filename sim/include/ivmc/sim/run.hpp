// Running scenarios: one point in this process, or a sweep of points in child processes.
#pragma once

#include "ivmc/sim/scenario.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace ivmc::sim {

// One named figure of a run (docs/metrics.md lists them all, with units in the names).
struct Metric {
  std::string name;
  double value = 0;
};

struct RunResult {
  std::vector<Metric> metrics; // in a fixed order for a given scenario
  std::uint64_t events = 0;    // simulated channel events processed
  double wall_s = 0;           // wall-clock time of the run
  std::string summary;         // a readable multi-line summary for people
};

// Runs one point in this process. A process can run one point only (one SimGrid engine per
// process); a second call throws std::logic_error. Throws ScenarioError on an invalid scenario.
RunResult run_scenario(const Scenario& scenario);

// The metrics a run of `scenario` reports, in order (results.csv's metric columns): the
// schema a real backend's run of the same scenario writes too.
std::vector<std::string> metric_names(const Scenario& scenario);

// A sweep: the cross product of the parameter values, times `seeds` seeds per point.
struct SweepOptions {
  std::vector<std::pair<std::string, std::vector<std::string>>> params; // key, values
  std::uint32_t seeds = 1;      // seeds first_seed, first_seed+1, ...
  std::uint64_t first_seed = 1; // default: the scenario's seed
  unsigned jobs = 0;            // concurrent child processes; 0: the number of CPUs
  std::string out_dir;          // results.csv and meta.json go here
  bool progress = false;        // print points done, rate and time left to stderr
};

// Runs every (point, seed) not yet in out_dir/results.csv, each in its own child process
// running `runner`, appending one row per completed run. Returns the number of runs made.
// `runner` defaults to run_scenario.
using PointRunner = std::function<RunResult(const Scenario&)>;
std::size_t run_sweep(const Scenario& base, const SweepOptions& options,
                      const PointRunner& runner = run_scenario);

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

// The rows of a results.csv written by run_sweep (docs/results.md), each as column -> value,
// sorted by point, then seed. A torn last line (a crash mid-write) is ignored. Throws
// std::runtime_error when the file cannot be read or is not a results.csv.
std::vector<std::map<std::string, std::string>> read_results(const std::string& csv_path);

} // namespace ivmc::sim
