// The built-in cost profiles, sim/profiles/*.toml, embedded by sim/CMakeLists.txt as raw string
// literals (embedded_profiles.cpp, generated in the build directory).
#pragma once

#include <span>
#include <string_view>

namespace ivmc::sim::embedded {

struct Profile {
  std::string_view name; // the file's stem
  std::string_view text;
};

std::span<const Profile> profiles();

} // namespace ivmc::sim::embedded
