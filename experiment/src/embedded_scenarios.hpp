// The scenario files embedded at build time (experiment/CMakeLists.txt generates their definitions
// from scenarios/default.toml and scenarios/presets/*.toml).
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace ivmc::experiment::embedded {

struct File {
  std::string_view name; // the file's stem: "xenloop"
  std::string_view text;
};

std::string_view default_scenario();
std::span<const File> presets(); // sorted by name

} // namespace ivmc::experiment::embedded

namespace ivmc::experiment::detail {

// "the presets are a, b, c" (or "there are none"), for messages.
std::string preset_names();

} // namespace ivmc::experiment::detail
