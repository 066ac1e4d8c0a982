// `ivmc summarize`: see summarize_command.hpp.
#include "summarize_command.hpp"

#include "ivmc/experiment/summary.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <stdexcept>

namespace ivmc::cli {

CLI::App* add_summarize(CLI::App& app, SummarizeArgs& a) {
  auto* cmd = app.add_subcommand(
      "summarize", "print the per-point summary (mean and 95% CI of the headline metrics) of an "
                   "output directory of `ivmc run --out` or `ivmc sweep`");
  cmd->add_option("dir", a.dir, "the output directory (holding results.csv)")->required();
  cmd->add_flag("--json", a.json, "print one JSON object instead of the table");
  return cmd;
}

int summarize_main(const SummarizeArgs& a) {
  experiment::OutputResults out;
  try {
    out = experiment::read_output(a.dir);
  } catch (const experiment::NoResults& e) {
    fmt::print(stderr, "ivmc summarize: {}\n", e.what());
    return 2;
  } catch (const std::runtime_error& e) { // not a results.csv, a malformed row
    fmt::print(stderr, "ivmc summarize: {}\n", e.what());
    return 2;
  }
  if (a.json) {
    std::fputs(experiment::summary_json(out.rows, out.param_keys).c_str(), stdout);
    return 0;
  }
  fmt::print("{}: {} runs\n\n{}", a.dir, out.rows.size(),
             experiment::summary_table(out.rows, out.param_keys));
  return 0;
}

} // namespace ivmc::cli
