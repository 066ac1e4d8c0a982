// Where the `ivmc` subcommands that run Python find it and its scripts (ivmc plot, ivmc
// calibrate): /usr/bin/python3 (the project's only Python), and the analysis/ folder of the
// sources this binary was built from, or IVMC_ANALYSIS_DIR.
#pragma once

#include <cstdlib>
#include <filesystem>

#ifndef IVMC_SOURCE_DIR
#define IVMC_SOURCE_DIR "."
#endif

namespace ivmc::cli {

inline constexpr const char* kPython = "/usr/bin/python3";

inline std::filesystem::path analysis_dir() {
  if (const char* env = std::getenv("IVMC_ANALYSIS_DIR"); env != nullptr && *env != '\0')
    return env;
  return std::filesystem::path(IVMC_SOURCE_DIR) / "analysis";
}

} // namespace ivmc::cli
