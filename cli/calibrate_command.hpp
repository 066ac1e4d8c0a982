// `ivmc calibrate --backend host [--out PROFILE.toml]` and `ivmc calibrate --check [--profile P]
// [--json]`: fits the simulator's cost model to a real backend and checks the fit on held-out
// cases (docs/costs.md, "Cost profiles"). The measuring, fitting and checking is
// analysis/calibrate.py (scipy's least squares); this command checks its options and runs it
// with Debian's Python, telling it which ivmc to drive (this one).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace ivmc::cli {

struct CalibrateArgs {
  std::string backend = "host";
  std::string out;     // the profile file to write
  bool check = false;  // the held-out check instead of a fit
  std::string profile; // with --check: the profile to check (default: the built-in host)
  bool json = false;   // with --check
  unsigned reps = 3;   // runs per case
  double duration = 0.5;
  unsigned max_evals = 12;
};

CLI::App* add_calibrate(CLI::App& app, CalibrateArgs& args); // the `calibrate` subcommand
int calibrate_main(const CalibrateArgs& args); // execs the calibrator; returns only on error

} // namespace ivmc::cli
