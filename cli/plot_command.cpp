// `ivmc plot`: finds analysis/NAME.py and replaces this process with Debian's Python running it
// (the analysis scripts need its numpy, pandas and matplotlib).
#include "plot_command.hpp"

#include "analysis_dir.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace ivmc::cli {
namespace {

// The scripts in `dir` (every NAME.py but the shared module), sorted, comma-separated.
std::string script_names(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const auto p = e.path();
    if (p.extension() == ".py" && p.stem() != "common" && p.stem().string()[0] != '_')
      names.push_back(p.stem().string());
  }
  std::sort(names.begin(), names.end());
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

bool plain_name(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

} // namespace

CLI::App* add_plot(CLI::App& parent, PlotArgs& a) {
  auto* cmd = parent.add_subcommand(
      "plot", "draw figures from a results directory with analysis/NAME.py (docs/figures.md): "
              "race_exposure, throughput, latency, notifications, pool");
  cmd->add_option("name", a.name, "the analysis script, e.g. throughput")->required();
  cmd->add_option("results_dir", a.results_dir,
                  "a directory written by `ivmc sweep` or `ivmc run --out`")
      ->required();
  cmd->add_option("--out", a.out, "where to write the figures (default: RESULTS_DIR/figures)");
  cmd->add_option("script_args", a.extra, "options for the script, after -- (see -- --help)");
  cmd->footer("The analysis directory is " + analysis_dir().string() +
              " (IVMC_ANALYSIS_DIR overrides it); the scripts run with /usr/bin/python3.");
  return cmd;
}

int plot_main(const PlotArgs& a) {
  const auto dir = analysis_dir();
  const auto script = dir / (a.name + ".py");
  if (!plain_name(a.name) || a.name == "common" || !std::filesystem::is_regular_file(script)) {
    fmt::print(stderr,
               "ivmc plot: no analysis script {} (looked for {}); the scripts there: {}. "
               "Set IVMC_ANALYSIS_DIR to the analysis/ directory of the ivmc sources if it "
               "moved.\n",
               a.name, script.string(), script_names(dir));
    return 2;
  }
  std::vector<std::string> args = {kPython, script.string(), a.results_dir};
  if (!a.out.empty()) {
    args.push_back("--out");
    args.push_back(a.out);
  }
  args.insert(args.end(), a.extra.begin(), a.extra.end());
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  ::execv(kPython, argv.data());
  fmt::print(stderr, "ivmc plot: cannot run {}: {}\n", kPython, std::strerror(errno));
  return 127;
}

} // namespace ivmc::cli
