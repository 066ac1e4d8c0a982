// The results schema, the same for every backend: what one run reports (RunResult, its metrics
// in the order metric_names gives), and the rows of a sweep's results.csv (docs/results.md,
// docs/metrics.md).
#pragma once

#include "ivmc/experiment/scenario.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ivmc::experiment {

// One named figure of a run (docs/metrics.md lists them all, with units in the names). A
// backend that cannot take a measure reports NaN.
struct Metric {
  std::string name;
  double value = 0;

  bool operator==(const Metric&) const = default;
};

// One membership change of a run (a VM migrated, created or shut down) as changes.csv records
// it (scenario key output.changes; docs/results.md "changes.csv" documents each column).
struct ChangeRecord {
  double time_s = 0;             // when the change took effect (a migration: its switch-over)
  std::string kind;              // "migration", "creation", "shutdown"
  std::string vm;                // the VM that changed
  std::int64_t from_host = -1;   // the host it left (-1: a creation)
  std::int64_t to_host = -1;     // the host it is on now (-1: a shutdown)
  std::uint64_t observers = 0;   // VMs whose view the change made stale (the VM itself aside)
  std::uint64_t notified = 0;    // of which learnt of it before the run ended
  double detection_max_s = 0;    // the longest t_notified - t_event among them (NaN: none learnt)
  double detection_mean_s = 0;   // the mean of the same (NaN: none learnt)
  std::uint64_t stale_sends = 0; // sends whose race window was this change's
  std::uint64_t race_operations = 0; // link operations (Table IV) in its race windows
  std::uint64_t race_errors = 0;     // of which failed

  bool operator==(const ChangeRecord&) const = default;
};

// changes.csv's columns after point, seed and the parameters, in ChangeRecord's order.
const std::vector<std::string>& change_columns();
// A record's fields as text, in change_columns() order; and back (std::runtime_error if
// malformed).
std::vector<std::string> change_fields(const ChangeRecord& c);
ChangeRecord parse_change(const std::vector<std::string>& fields);

struct RunResult {
  std::vector<Metric> metrics; // exactly metric_names(scenario), in that order
  std::uint64_t events = 0;    // the backend's unit of work (the simulator: channel events)
  double wall_s = 0;           // wall-clock time of the run
  std::string summary;         // a readable multi-line summary for people
  // With output.changes: every membership change in time order (else empty and unwritten).
  bool changes_recorded = false;
  std::vector<ChangeRecord> changes;

  bool operator==(const RunResult&) const = default;
};

// The metrics a run of `scenario` reports, in order (results.csv's metric columns): per
// workload i the w<i>_ figures, then the run's totals. Every backend reports exactly these.
std::vector<std::string> metric_names(const Scenario& scenario);

// `metrics` in the order of metric_names(scenario), each value from `values` by name and NaN
// where absent (a backend that measures only part of the schema). Throws std::logic_error on a
// name in `values` that is not in the schema (a misspelt metric must not vanish silently).
std::vector<Metric> schema_metrics(const Scenario& scenario,
                                   const std::map<std::string, double>& values);

// The rows of a results.csv written by a sweep (docs/results.md), each as column -> value,
// sorted by point, then seed. A torn last line (a crash mid-write) is ignored. Throws
// std::runtime_error when the file cannot be read or is not a results.csv.
std::vector<std::map<std::string, std::string>> read_results(const std::string& csv_path);

} // namespace ivmc::experiment
