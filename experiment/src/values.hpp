// The scenario loader's values (internal): one Value type for every kind of key, its texts
// (TOML literals for to_toml and messages), and the override syntax (`--set key=value`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace ivmc::experiment::detail {

using StringPairs = std::vector<std::pair<std::string, std::string>>;
// One alternative per Kind, in the same order.
using Value = std::variant<bool, std::int64_t, double, std::string, std::vector<std::string>,
                           StringPairs, std::vector<double>>;
enum class Kind { boolean, integer, number, string, strings, pairs, numbers };

// What a key of kind `k` expects, for messages ("a number").
std::string_view expected(Kind k);

template <class T>
constexpr Kind kind_of() {
  if constexpr (std::is_same_v<T, bool>)
    return Kind::boolean;
  else if constexpr (std::is_integral_v<T>)
    return Kind::integer;
  else if constexpr (std::is_floating_point_v<T>)
    return Kind::number;
  else if constexpr (std::is_same_v<T, std::string> || std::is_enum_v<T>)
    return Kind::string; // an enum is written as its text (choices.hpp)
  else if constexpr (std::is_same_v<T, std::vector<std::string>>)
    return Kind::strings;
  else if constexpr (std::is_same_v<T, StringPairs>)
    return Kind::pairs;
  else {
    static_assert(std::is_same_v<T, std::vector<double>>, "a field of an unsupported type");
    return Kind::numbers;
  }
}

// Shortest text that reads back as the same double; TOML's spelling of the infinities and NaN.
std::string format_number(double v);
// A TOML basic string.
std::string quote(std::string_view s);
// A TOML key: bare when it can be.
std::string format_key(std::string_view k);
// A value as a TOML literal.
std::string format_value(const Value& v);

std::string_view trim(std::string_view s);
std::optional<std::int64_t> parse_integer(std::string_view t);
std::optional<double> parse_double(std::string_view t);

// An override's value text as a value of kind `k`: scalars as written (strings unquoted, or in
// double quotes), lists in TOML syntax (["a", "b"]) or comma-separated (a,b; pairs a:b,c:d).
std::optional<Value> from_text(std::string_view text, Kind k);

} // namespace ivmc::experiment::detail
