// Suggestions for unknown keys (internal): "unknown key `channel.notfy`; did you mean
// `channel.notify`?".
#pragma once

#include "fields.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace ivmc::experiment::detail {

// The message for an unknown key: `shown` is the key as written; `key` is compared with
// `known`; a suggestion is written with `prefix` before it.
std::string unknown_key_message(const std::string& shown, std::string_view key,
                                const std::vector<std::string>& known,
                                const std::string& prefix = "");

// Every key a scenario file may hold at the top level or in a section (for suggestions).
std::vector<std::string> known_scenario_keys();

template <class Item>
std::vector<std::string> known_item_keys(const ItemList<Item>& list) {
  std::vector<std::string> out;
  for (const auto& f : list.fields) out.emplace_back(f.key);
  return out;
}

} // namespace ivmc::experiment::detail
