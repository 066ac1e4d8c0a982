// What the guest backends (kvm: QEMU guests, xen: Xen domains) share: how they choose a
// workload's path and refuse what they do not play, and the mapping of their agents' report
// lines (posix::Report's `IVMC-RESULT key=value ...`) into the results schema
// (experiment::metric_names). Its own small target, so that neither backend includes the other.
// Which path a workload took (local_share, frames_local, frames_remote, sends, channels_opened)
// comes from the agents' measured path counters (posix::PathCounters), never from the plan: a
// line without valid counters makes those metrics NaN. Metrics the guests cannot observe (race
// windows, membership probes, pools, one-way latencies) are NaN.
#pragma once

#include "ivmc/experiment/results.hpp"
#include "ivmc/experiment/scenario.hpp"
#include "ivmc/posix/workload.hpp"

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace ivmc::guest_results {

using posix::ReportFields;

// One workload's two report lines: the sender (or pinger) and the receiver (or echo).
struct GuestWorkloadOutcome {
  ReportFields from, to;
  // What the plan chose (the shared-memory channel, else the guests' network path). Only the
  // summary shows it, next to what was measured when the two differ; no metric uses it.
  bool planned_local = false;
};

// `outcomes[i]` is the scenario's workload i. `summary` starts the run's summary text (its
// first line).
experiment::RunResult guest_results(const experiment::Scenario& scenario,
                                    const std::vector<GuestWorkloadOutcome>& outcomes,
                                    std::string summary,
                                    std::chrono::steady_clock::time_point wall0);

// A report line's field as a number; NaN when absent or not a number.
double report_number(const ReportFields& r, const char* key);
// The race metrics from a migrating sender's report line (sends_in_window, race_<op>_<kind>_*
// as the guest agents print them): sends_in_race_window, race_exposure (over `messages`), the
// Table IV cells race_<operation>_<change>, race_operations, race_errors and race_deferred.
void race_metrics(const ReportFields& sender, double messages, std::map<std::string, double>& mx);

// The shared-memory path: the workload's VMs share a scenario host and the channel is on.
// Otherwise the guests' network path. Throws on a VM the scenario does not have.
bool through_channel(const experiment::Scenario& s, const experiment::WorkloadConfig& w);
// One issue per [[event]] and [[generator]] (at its file:line) that `backend` ("kvm", "xen")
// does not play, naming --ignore-events; none when `ignore_events`.
std::vector<experiment::ScenarioIssue> unplayed_events(const experiment::Scenario& s,
                                                       bool ignore_events, const char* backend);
// Runs a backend's image builder (`script --agent AGENT --out DIR`, cached by the script
// itself); throws when it fails (its own message went to stderr).
void build_guest_image(const std::string& script, const std::string& agent, const std::string& dir);
// `s` as one single-quoted shell word.
std::string shell_quote(const std::string& s);
// "/tmp/ivmc-run-logs-<pid>" when `out_dir` is empty, else out_dir/leaf: where a run keeps its
// guests' logs.
std::string log_dir(const std::string& out_dir, const char* leaf);

} // namespace ivmc::guest_results
