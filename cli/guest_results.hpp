// What real guests measured, in the simulator's results.csv schema (sim::metric_names): one
// mapping shared by `ivmc run --backend kvm` and `--backend xen`, whose agents print the same
// report lines (posix::Report). Metrics the guests cannot observe (race windows, membership
// probes, pools, one-way latencies) are NaN.
#pragma once

#include "ivmc/posix/workload.hpp"
#include "ivmc/sim/run.hpp"
#include "ivmc/sim/scenario.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace ivmc::cli {

// One workload's two report lines: the sender (or pinger) and the receiver (or echo).
struct GuestWorkloadOutcome {
  posix::ReportFields from, to;
  bool local = false; // through the shared-memory channel (else the guests' network path)
};

// `outcomes[i]` is the scenario's workload i. `path_names` name the two paths in the summary
// ({"channel", "TCP"}). `summary` starts the run's summary text (its first line).
sim::RunResult guest_results(const sim::Scenario& scenario,
                             const std::vector<GuestWorkloadOutcome>& outcomes, std::string summary,
                             std::chrono::steady_clock::time_point wall0);

// A report line's field as a number; NaN when absent or not a number.
double report_number(const posix::ReportFields& r, const char* key);

// What both real backends decide the same way.
// tcp_rr and udp_rr: round trips; the others stream.
bool is_request_response(const sim::WorkloadConfig& w);
// The shared-memory path: the workload's VMs share a scenario host and the channel is on.
// Otherwise the guests' network path. Throws on a VM the scenario does not have.
bool through_channel(const sim::Scenario& s, const sim::WorkloadConfig& w);
// Throws, naming --ignore-events, when the scenario has [[event]]s or [[generator]]s that
// `backend` ("kvm", "xen") does not play and `ignore_events` is not set.
void refuse_unplayed_events(const sim::Scenario& s, bool ignore_events, const char* backend);
// Runs a backend's image builder (`script --agent AGENT --out DIR`, cached by the script
// itself); throws when it fails (its own message went to stderr).
void build_guest_image(const std::string& script, const std::string& agent, const std::string& dir);
// `s` as one single-quoted shell word.
std::string shell_quote(const std::string& s);

} // namespace ivmc::cli
