// A guest backend's migration run's results from its two agents' report lines (the migrating
// sender's `link-send` and the receiver's `link-recv`, posix::link_stream.hpp): what the kvm
// and xen runs (kvm_migration_run.hpp, xen_migration_run.hpp) both measure the same way.
#pragma once

#include "ivmc/experiment/scenario.hpp"
#include "ivmc/posix/workload.hpp"

#include <map>
#include <string>

namespace ivmc::guest_results {

// Throws, naming both ends, unless the receiver got exactly the bytes the sender sent (count
// and checksum).
void check_stream_delivered(const experiment::WorkloadConfig& w, const posix::ReportFields& sender,
                            const posix::ReportFields& receiver);

// The stream's metrics into `mx`: throughput, path shares and frames, the race metrics
// (race_metrics), the link's switches, fallbacks, probes and channels, pending and recovered
// bytes (in whole messages of the stream's size), and the zeros of a TCP stream without pool or
// trust list. Not set: lost_*, membership_probes, migrations, migration_s_mean (each backend
// knows them its own way).
void stream_migration_metrics(const experiment::WorkloadConfig& w,
                              const posix::ReportFields& sender,
                              const posix::ReportFields& receiver,
                              std::map<std::string, double>& mx);

// The summary's last line: throughput, messages, local share, the race counts, the wall time.
std::string stream_migration_summary(const std::map<std::string, double>& mx, double wall_s);

} // namespace ivmc::guest_results
