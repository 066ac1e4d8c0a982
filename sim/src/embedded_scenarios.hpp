// The scenario files embedded at build time (sim/CMakeLists.txt generates their definitions
// from scenarios/default.toml and scenarios/presets/*.toml).
#pragma once

#include <span>
#include <string_view>

namespace ivmc::sim::embedded {

struct File {
  std::string_view name; // the file's stem: "xenloop"
  std::string_view text;
};

std::string_view default_scenario();
std::span<const File> presets(); // sorted by name

} // namespace ivmc::sim::embedded
