// `ivmc plot NAME RESULTS_DIR [--out DIR] [-- SCRIPT OPTIONS]`: runs analysis/NAME.py on a
// results directory (docs/figures.md).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace ivmc::cli {

struct PlotArgs {
  std::string name;               // the script: analysis/<name>.py
  std::string results_dir;        // written by `ivmc sweep` or `ivmc run --out`
  std::string out;                // where the figure goes (the script's default if empty)
  std::vector<std::string> extra; // passed on to the script
};

CLI::App* add_plot(CLI::App& app, PlotArgs& args); // the `plot` subcommand
int plot_main(const PlotArgs& args);               // execs the script; returns only on error

} // namespace ivmc::cli
