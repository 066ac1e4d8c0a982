// `key=value` overrides (overrides.hpp), through the same tables of fields as the loader.
#include "ivmc/experiment/overrides.hpp"

#include "fields.hpp"
#include "loader.hpp"
#include "suggest.hpp"
#include "values.hpp"

#include <algorithm>

namespace ivmc::experiment::detail {

namespace {

[[noreturn]] void override_error(const std::string& key, std::string what) {
  throw ScenarioError({{key, std::move(what)}});
}

template <class Obj>
void set_from_text(const Field<Obj>& f, Obj& obj, const std::string& key, std::string_view text) {
  const auto v = from_text(text, f.kind);
  if (!v)
    override_error(key, "expected " + std::string(expected(f.kind)) + "; got " + quote(trim(text)));
  if (auto err = f.set(obj, *v); !err.empty()) override_error(key, err);
}

std::vector<std::string> known_override_keys() {
  auto out = known_scenario_keys();
  for_each_list([&](const auto& list) {
    for (const auto& f : list.fields)
      out.push_back(std::string(list.name) + "." + std::string(f.key));
  });
  return out;
}

} // namespace

} // namespace ivmc::experiment::detail

namespace ivmc::experiment {

using namespace detail;

void apply_override(Scenario& s, std::string_view assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string_view::npos)
    override_error(std::string(trim(assignment)), "expected KEY=VALUE");
  const std::string key(trim(assignment.substr(0, eq)));
  const auto text = assignment.substr(eq + 1);
  if (key.empty()) override_error(std::string(assignment), "expected KEY=VALUE");

  if (key == "preset") { // a preset's tables over the scenario as it is
    // Only the preset's own problems are errors here: the scenario as a whole is validated
    // after all the overrides.
    if (auto issues = apply_preset_over(s, std::string(trim(text))); !issues.empty())
      throw ScenarioError(std::move(issues));
    return;
  }
  if (key.starts_with("costs.")) {
    const auto name = key.substr(6);
    if (name.empty()) override_error(key, "expected costs.NAME");
    if (name == "profile") { // a name or a path, relative to the working directory here
      s.cost_profile = std::string(trim(text));
      if (s.cost_profile.empty()) override_error(key, "expected a cost profile's name or path");
      s.set_at.erase(key);
      return;
    }
    const auto v = parse_double(trim(text));
    if (!v) override_error(key, "expected a number; got " + quote(trim(text)));
    s.costs[name] = *v;
    s.set_at.erase(key);
    return;
  }
  if (const auto* f = find_field(scenario_fields(), key)) {
    set_from_text(*f, s, key, text);
    s.set_at.erase(key);
    return;
  }

  // LIST.FIELD (every item) or LIST[i].FIELD (one).
  const auto dot = key.find('.');
  const auto bracket = key.find('[');
  const auto list_name = key.substr(0, std::min(dot, bracket));
  bool done = false;
  for_each_list([&](const auto& list) {
    if (list.name != list_name || dot == std::string::npos) return;
    const auto field_name = key.substr(dot + 1);
    const auto* f = find_field(list.fields, field_name);
    if (!f) {
      const auto prefix = key.substr(0, dot + 1);
      override_error(key, unknown_key_message(key, field_name, known_item_keys(list), prefix));
    }
    auto& items = s.*(list.member);
    if (bracket == std::string::npos || bracket > dot) {
      if (items.empty()) override_error(key, "the scenario has no " + std::string(list.plural));
      for (auto& item : items) set_from_text(*f, item, key, text);
      for (std::size_t i = 0; i < items.size(); ++i)
        s.set_at.erase(std::string(list.name) + "[" + std::to_string(i) + "]." + field_name);
    } else {
      const auto close = key.find(']', bracket);
      const auto index =
          close == std::string::npos || close + 1 != dot
              ? std::nullopt
              : parse_integer(std::string_view(key).substr(bracket + 1, close - bracket - 1));
      if (!index)
        override_error(key, "expected " + std::string(list.name) + "[INDEX]." + field_name);
      if (*index < 0 || static_cast<std::size_t>(*index) >= items.size())
        override_error(
            key,
            "the scenario has " + std::to_string(items.size()) + " " + std::string(list.plural) +
                (items.empty() ? "" : " (indices 0.." + std::to_string(items.size() - 1) + ")"));
      set_from_text(*f, items[static_cast<std::size_t>(*index)], key, text);
      s.set_at.erase(std::string(list.name) + "[" + std::to_string(*index) + "]." + field_name);
    }
    done = true;
  });
  if (!done) override_error(key, unknown_key_message(key, key, known_override_keys()));
}

} // namespace ivmc::experiment
