// The workloads' part of a run's summary for people. Up to kWorkloadLines workloads, one line
// each, as the backend wrote it; beyond, one line per workload would bury the rest (1,000
// workloads, 1,000 lines), so the lines become aggregates: per kind (streams, request-response)
// the count, the total and the median, p99 and minimum per workload; the tail latency's median,
// p99 and maximum across workloads; and the few slowest workloads' own lines. Every workload's
// figures stay in results.csv (w<i>_*). docs/results.md "The run's summary".
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace ivmc::experiment {

inline constexpr std::size_t kWorkloadLines = 20; // more workloads than this: aggregates
inline constexpr std::size_t kSlowestShown = 3;   // lines of the slowest workloads then

class WorkloadSummary {
public:
  // One workload: its line for people (ending in '\n'), whether it is request-response, its
  // headline figure (Mb/s for a stream, transactions/s for request-response), and its highest
  // latency percentile in us (NaN if none).
  void add(std::string line, bool request_response, double headline, double tail_us);
  // The lines, or the aggregates, each indented by two spaces and ending in '\n'.
  // `tail_name` names the tail percentile ("p99.9").
  std::string text(const std::string& tail_name) const;

private:
  struct Workload {
    std::string line;
    bool rr;
    double headline, tail_us;
  };
  std::vector<Workload> workloads_;
};

} // namespace ivmc::experiment
