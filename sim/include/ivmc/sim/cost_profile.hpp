// Cost profiles: a named set of the cost model's parameter values (costs.hpp) with where they
// come from. A scenario selects one with `costs.profile = "NAME"` (a built-in profile) or a
// profile file's path; its [costs] entries then override the profile's values by name.
//
// A profile is TOML (docs/costs.md, "Cost profiles"): a [provenance] table (machine, CPU,
// date, ivmc commit, backend, method, the measurements it was fitted to with the model's value
// for each, and the fit's residuals) and a [costs] table of values. Parameters a profile does
// not list keep the default profile's values. Profile files are hostile input: every problem
// (TOML syntax, unknown parameters, values that are not finite numbers >= 0, wrong types,
// missing provenance) is reported at its file:line, all at once.
//
// Built-in profiles are embedded at build time from sim/profiles/*.toml:
//   - "xenloop-hpdc2008", the default: the papers' profile, fitted to the XenLoop paper's
//     absolute figures (W08, costs.hpp); exactly CostModel{}'s values;
//   - "host": this project's host backend on its build machine, fitted by `ivmc calibrate`.
#pragma once

#include "ivmc/sim/costs.hpp"

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ivmc::sim {

// The default profile's name: scenarios without costs.profile run with it.
inline constexpr std::string_view kDefaultCostProfile = "xenloop-hpdc2008";

// One measurement a profile was fitted to (or checked against), and the model's value for it.
struct ProfileMeasurement {
  std::string name; // "stream polling 1024 B"
  std::string unit; // "Mb/s", "trans/s"
  double measured = 0;
  double model = 0;
  bool fitted = true; // false: shown for context only
};

struct CostProfile {
  std::string name;   // its name (a built-in's), or the file's stem
  std::string origin; // "builtin:NAME" or the file's path
  // Provenance (required): where and how the values were found.
  std::string machine, cpu, date, ivmc_commit, backend, method;
  std::string description; // optional
  std::vector<ProfileMeasurement> measurements;
  double residual_median = 0; // |log(model / measured)| over the fitted measurements
  double residual_max = 0;
  CostModel costs;
};

// Every problem found in a profile, each "where: what" (where is file:line when known).
class ProfileError : public std::runtime_error {
public:
  explicit ProfileError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

private:
  std::vector<std::string> problems_;
};

// The built-in profiles' names, sorted.
std::vector<std::string> builtin_cost_profiles();

// A profile from TOML text; `origin` names it in messages (a path, or "builtin:NAME").
// Throws ProfileError.
CostProfile parse_cost_profile(std::string_view text, const std::string& origin);

// A built-in profile by name, or else a profile file by path ("" is the default). Throws
// ProfileError (an unknown name lists the built-in ones; a missing file names it).
CostProfile load_cost_profile(const std::string& name_or_path);

} // namespace ivmc::sim
