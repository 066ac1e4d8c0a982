// The source tree's `git describe --always --dirty` when this binary was built (meta.json's
// `git_describe`). Computed at every build, not at configure time, so a commit followed by an
// incremental build is recorded (experiment/git_describe.cmake writes the definition).
#pragma once

#include <string_view>

namespace ivmc::experiment::detail {

// Empty when unknown: git was missing, or the tree had no repository of its own.
std::string_view git_describe();

} // namespace ivmc::experiment::detail
