// Scenario values from TOML nodes (internal; toml++ stays in the loader's files).
#pragma once

#include "values.hpp"

#include <toml++/toml.h>

#include <optional>
#include <string>

namespace ivmc::experiment::detail {

// What a TOML node holds, for "expected X; got Y".
std::string describe(const toml::node& n);
// The node as a value of kind `k`, or nothing if it is of another type.
std::optional<Value> from_node(const toml::node& n, Kind k);

} // namespace ivmc::experiment::detail
