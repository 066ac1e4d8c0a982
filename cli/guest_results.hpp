// What real guests measured, in the simulator's results.csv schema (sim::metric_names): one
// mapping shared by `ivmc run --backend kvm` and `--backend xen`, whose agents print the same
// report lines (kvm::Report). Metrics the guests cannot observe (race windows, membership
// probes, pools, one-way latencies) are NaN.
#pragma once

#include "ivmc/kvm/workload.hpp"
#include "ivmc/sim/run.hpp"
#include "ivmc/sim/scenario.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace ivmc::cli {

// One workload's two report lines: the sender (or pinger) and the receiver (or echo).
struct GuestWorkloadOutcome {
  kvm::ReportFields from, to;
  bool local = false; // through the shared-memory channel (else the guests' network path)
};

// `outcomes[i]` is the scenario's workload i. `path_names` name the two paths in the summary
// ({"channel", "TCP"}). `summary` starts the run's summary text (its first line).
sim::RunResult guest_results(const sim::Scenario& scenario,
                             const std::vector<GuestWorkloadOutcome>& outcomes, std::string summary,
                             std::chrono::steady_clock::time_point wall0);

// A report line's field as a number; NaN when absent or not a number.
double report_number(const kvm::ReportFields& r, const char* key);

} // namespace ivmc::cli
