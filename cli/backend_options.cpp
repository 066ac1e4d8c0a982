// See backend_options.hpp.
#include "backend_options.hpp"

#include "ivmc/backends/table.hpp"

#include <fmt/format.h>

namespace ivmc::cli {

void add_backend_options(CLI::App& cmd, BackendArgs& a) {
  std::string names;
  for (const auto& n : backends::backend_names()) names += (names.empty() ? "" : "|") + n;
  cmd.add_option("--backend", a.name,
                 fmt::format("where the scenario runs ({}): sim simulates; host runs it on this "
                             "machine's processes; kvm on QEMU guests and xen between domains of a "
                             "Xen hypervisor under QEMU, their workloads one at a time; all into "
                             "the same results schema",
                             names))
      ->capture_default_str();
  cmd.add_flag("--ignore-events", a.ignore_events,
               "kvm, xen: run the workloads with the initial placement even if the scenario has "
               "[[event]]s or [[generator]]s (they are not played)");
  cmd.add_option("--guest-bytes,--kvm-bytes", a.guest_bytes, "kvm, xen: bytes per stream workload")
      ->capture_default_str();
}

experiment::BackendSettings backend_settings(const BackendArgs& a, bool progress,
                                             const std::string& out_dir) {
  experiment::BackendSettings s;
  s.progress = progress;
  s.out_dir = out_dir;
  s.cache_dir = experiment::default_cache_dir();
  s.guest_bytes = a.guest_bytes;
  s.ignore_events = a.ignore_events;
  return s;
}

void print_issues(const std::vector<experiment::ScenarioIssue>& issues) {
  for (const auto& i : issues) fmt::print(stderr, "{}: {}\n", i.where, i.what);
}

} // namespace ivmc::cli
