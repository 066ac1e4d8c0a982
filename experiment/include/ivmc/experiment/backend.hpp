// A backend: one way of playing a scenario (the simulator, processes on this machine, QEMU
// guests, Xen domains) behind one interface, so that `ivmc run`, `ivmc sweep` and Python take
// one path into any of them (ARCHITECTURE.md). The table of the backends a build has is
// backends/table (ivmc/backends/table.hpp).
#pragma once

#include "ivmc/experiment/results.hpp"
#include "ivmc/experiment/scenario.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ivmc::experiment {

class Backend {
public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0; // "sim", "host", "kvm", "xen"
  // Everything in `s` this backend cannot play, each naming the key at file:line (ScenarioIssue,
  // as validate() does; issue_at builds one). Empty: it can run. Nothing boots or forks here.
  // `s` is valid (validate(s) is empty).
  virtual std::vector<ScenarioIssue> check(const Scenario& s) const = 0;
  // One run of `s` with seed `seed` (use it instead of s.seed). Runs in the calling process
  // (callers that need isolation call it in a forked child: child_run.hpp). Throws
  // std::runtime_error with a readable reason on failure.
  virtual RunResult run(const Scenario& s, std::uint64_t seed) = 0;
  // How many runs of this backend may share the machine by default in a sweep (sim: the CPU
  // count; backends that time real CPUs: 1).
  virtual unsigned default_jobs() const = 0;
};

// Settings every backend factory receives (from the CLI or Python).
struct BackendSettings {
  bool progress = false;                 // print progress lines on stderr
  double progress_every_s = 5;           // between them when stderr is not a terminal
  std::string out_dir;                   // where runs may keep logs ("" : a temp dir)
  std::string cache_dir;                 // images etc. (IVMC_CACHE or ~/.cache/ivmc)
  std::uint64_t guest_bytes = 32u << 20; // kvm, xen
  bool ignore_events = false;            // kvm, xen
};

// The default cache directory: $IVMC_CACHE, else $HOME/.cache/ivmc.
std::string default_cache_dir();

// A backend without per-change records (all but the simulator) refuses output.changes = true
// through this: one issue at the key, or none.
std::vector<ScenarioIssue> unrecorded_changes(const Scenario& s, std::string_view backend);

// validate(s), then backend.check(s): every reason `s` cannot run on `backend`. Empty: it can.
std::vector<ScenarioIssue> issues_on(const Backend& backend, const Scenario& s);

} // namespace ivmc::experiment
