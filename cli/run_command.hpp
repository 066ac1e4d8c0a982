// `ivmc run`: one scenario point in this process, a summary for people, results for programs.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ivmc::cli {

struct RunOptions {
  std::string scenario = "default"; // a file, `default` or `preset:NAME`
  std::string out;                  // results.csv and meta.json go here (optional)
  std::optional<std::uint64_t> seed;
  std::vector<std::string> sets; // KEY=VALUE overrides, in order
  bool quiet = false;
  std::string backend = "sim";           // sim | kvm (QEMU guests: kvm_run.hpp) | xen (xen_run.hpp)
  bool ignore_events = false;            // kvm, xen: run the workloads with the initial placement
  std::uint64_t guest_bytes = 32u << 20; // kvm, xen: bytes per stream workload
};

CLI::App* add_run(CLI::App& app, RunOptions& o);
int run_run(const RunOptions& o);

} // namespace ivmc::cli
