// `ivmc summarize DIR`: the summary table `ivmc sweep` ends with (per point: seeds, mean and 95%
// CI of the headline metrics), for an existing output directory of `ivmc run --out` or
// `ivmc sweep` (docs/results.md "Summary").
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace ivmc::cli {

struct SummarizeArgs {
  std::string dir;
  bool json = false;
};

CLI::App* add_summarize(CLI::App& app, SummarizeArgs& args);
int summarize_main(const SummarizeArgs& args); // 0; 2 when DIR holds no results

} // namespace ivmc::cli
