// See suggest.hpp.
#include "suggest.hpp"

#include <algorithm>
#include <limits>

namespace ivmc::experiment::detail {

namespace {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string_view last_part(std::string_view key) {
  const auto dot = key.rfind('.');
  return dot == std::string_view::npos ? key : key.substr(dot + 1);
}

// The known key `key` was most likely meant to be, or "".
std::string suggest(std::string_view key, const std::vector<std::string>& known) {
  for (const auto& k : known) // the right name in the wrong table: `notify` for channel.notify
    if (last_part(k) == last_part(key) && k != key) return k;
  std::string best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (const auto& k : known) {
    const auto d = edit_distance(key, k);
    if (d < best_distance) best_distance = d, best = k;
  }
  return best_distance <= std::max<std::size_t>(2, key.size() / 4) ? best : std::string();
}

} // namespace

std::string unknown_key_message(const std::string& shown, std::string_view key,
                                const std::vector<std::string>& known, const std::string& prefix) {
  std::string msg = "unknown key `" + shown + "`";
  if (auto s = suggest(key, known); !s.empty()) msg += "; did you mean `" + prefix + s + "`?";
  return msg;
}

std::vector<std::string> known_scenario_keys() {
  std::vector<std::string> out;
  for (const auto& f : scenario_fields()) out.emplace_back(f.key);
  for (auto sec : section_names()) out.push_back(sec);
  for (auto l : {"vm", "workload", "event", "generator", "costs", "preset"}) out.emplace_back(l);
  return out;
}

} // namespace ivmc::experiment::detail
