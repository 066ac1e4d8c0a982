// The options `ivmc run` and `ivmc sweep` share to choose a backend from the table
// (backends/table) and set it up.
#pragma once

#include "ivmc/experiment/backend.hpp"
#include "ivmc/experiment/scenario.hpp"

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace ivmc::cli {

struct BackendArgs {
  std::string name = "sim";              // a name from the table of backends
  bool ignore_events = false;            // kvm, xen: run the workloads with the initial placement
  std::uint64_t guest_bytes = 32u << 20; // kvm, xen: bytes per stream workload
};

// --backend, --ignore-events, --guest-bytes.
void add_backend_options(CLI::App& cmd, BackendArgs& a);

// The settings the backend's factory receives.
experiment::BackendSettings backend_settings(const BackendArgs& a, bool progress,
                                             const std::string& out_dir);

// Every issue on stderr, "where: what", one per line.
void print_issues(const std::vector<experiment::ScenarioIssue>& issues);

} // namespace ivmc::cli
