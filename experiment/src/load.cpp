// The scenario loader (load.hpp): TOML (toml++) over a Scenario through the tables of fields
// (fields.hpp), collecting every problem rather than stopping at the first.
//
// Issues carry the key path they are about ("workload[1].to"). While loading, every key is
// remembered with where it was set ("file.toml:14", or "preset:xenloop:3" for a key that came
// from a preset), so a semantic problem found after loading is reported at the line that set the
// offending value; the scenario keeps that map (Scenario::set_at) for later messages.
#include "ivmc/experiment/load.hpp"

#include "checker.hpp"
#include "embedded_scenarios.hpp"
#include "fields.hpp"
#include "loader.hpp"
#include "suggest.hpp"
#include "toml_values.hpp"

#include "ivmc/experiment/presets.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace ivmc::experiment::detail {

namespace {

// Applies TOML texts over a scenario, remembering where each key was set and collecting every
// problem (not stopping at the first).
class Loader {
public:
  // Starts from where `s`'s keys were set (s.set_at); finish() and commit() write it back.
  explicit Loader(Scenario& s) : s_(s), where_(s.set_at) {}

  void apply(std::string_view text, const std::string& origin, int depth) {
    toml::table root;
    try {
      root = toml::parse(text, origin);
    } catch (const toml::parse_error& e) {
      add("", at(origin, e.source().begin.line), "invalid TOML: " + std::string(e.description()));
      syntax_error_ = true;
      return;
    }
    if (const auto* p = root.get("preset"); p && p->is_string())
      apply_preset(p->as_string()->get(), at(origin, *p), depth);

    for (auto&& [k, node] : root) {
      const std::string key(k.str());
      const auto here = at(origin, k, node);
      if (key == "preset") {
        if (const auto* t = node.as_table())
          section(key, *t, origin);
        else if (!node.is_string())
          add(key, here,
              key + ": expected a preset name or a [preset] table; got " + describe(node));
      } else if (key == "costs") {
        if (const auto* t = node.as_table())
          costs(*t, origin);
        else
          add(key, here, "costs: expected a table of numbers; got " + describe(node));
      } else if (is_list_name(key)) {
        for_each_list([&](const auto& list) {
          if (list.name == key) items(list, node, origin);
        });
      } else if (const auto* f = find_field(scenario_fields(), key)) {
        set(*f, s_, key, node, here);
      } else if (auto secs = section_names();
                 std::find(secs.begin(), secs.end(), key) != secs.end()) {
        if (const auto* t = node.as_table())
          section(key, *t, origin);
        else
          add(key, here, key + ": expected a table ([" + key + "]); got " + describe(node));
      } else {
        add(key, here, unknown_key_message(key, key, known_scenario_keys()));
      }
    }
  }

  void apply_preset(const std::string& name, const std::string& where, int depth) {
    where_["preset"] = where;
    const auto text = preset_text(name);
    if (!text) {
      add("preset", where, "preset: no preset named " + quote(name) + "; " + preset_names());
      return;
    }
    if (depth >= 8) {
      add("preset", where, "preset: presets nest more than 8 deep (a cycle?)");
      return;
    }
    s_.preset_system.clear();
    apply(*text, "preset:" + name, depth + 1);
    s_.preset = name;
  }

  // The problems found while loading (TOML syntax, types, unknown keys), without checking the
  // result.
  std::vector<ScenarioIssue> load_issues() const {
    std::vector<ScenarioIssue> out;
    for (const auto& i : issues_) out.push_back({i.where, i.what});
    return out;
  }

  // Checks the result; throws ScenarioError with every issue found while loading and after.
  void finish() {
    std::vector<ScenarioIssue> out;
    std::set<std::string> keys;
    for (const auto& i : issues_) {
      out.push_back({i.where, i.what});
      keys.insert(i.key);
    }
    if (!syntax_error_) {
      forget_foreign_lines();
      for (const auto& i : check_scenario(s_))
        if (!keys.count(i.key)) out.push_back(resolve(i, s_, where_));
    }
    commit();
    sort_issues(out);
    if (!out.empty()) throw ScenarioError(std::move(out));
  }

private:
  static std::string at(const std::string& origin, std::size_t line) {
    return origin + ":" + std::to_string(line);
  }
  static std::string at(const std::string& origin, const toml::node& n) {
    return at(origin, n.source().begin.line);
  }
  static std::string at(const std::string& origin, const toml::key& k, const toml::node& n) {
    return at(origin, k.source().begin.line ? k.source().begin.line : n.source().begin.line);
  }

  void add(std::string key, std::string where, std::string what) {
    issues_.push_back({std::move(key), std::move(where), std::move(what)});
  }

  template <class Obj>
  void set(const Field<Obj>& f, Obj& obj, const std::string& path, const toml::node& node,
           const std::string& here) {
    where_[path] = here;
    const auto v = from_node(node, f.kind);
    if (!v) {
      add(path, here,
          path + ": expected " + std::string(expected(f.kind)) + "; got " + describe(node));
    } else if (auto err = f.set(obj, *v); !err.empty()) {
      add(path, here, path + ": " + err);
    }
  }

  void section(const std::string& name, const toml::table& t, const std::string& origin) {
    for (auto&& [k, node] : t) {
      const auto path = name + "." + std::string(k.str());
      const auto here = at(origin, k, node);
      if (const auto* f = find_field(scenario_fields(), path))
        set(*f, s_, path, node, here);
      else
        add(path, here, unknown_key_message(path, path, known_scenario_keys()));
    }
  }

  void costs(const toml::table& t, const std::string& origin) {
    for (auto&& [k, node] : t) {
      const auto path = "costs." + std::string(k.str());
      const auto here = at(origin, k, node);
      where_[path] = here;
      if (k.str() == "profile") {
        if (const auto* name = node.as_string())
          s_.cost_profile = profile_reference(name->get(), origin);
        else
          add(path, here,
              path + ": expected a cost profile's name or a file's path (a string); got " +
                  describe(node));
        continue;
      }
      if (const auto v = from_node(node, Kind::number))
        s_.costs[std::string(k.str())] = std::get<double>(*v);
      else
        add(path, here, path + ": expected a number; got " + describe(node));
    }
  }

  // A profile file named relative to a scenario file is found next to that file; a built-in
  // profile's name (no '/', not ending in .toml) and absolute paths stay as they are.
  static std::string profile_reference(const std::string& value, const std::string& origin) {
    const bool path = value.find('/') != std::string::npos || value.ends_with(".toml");
    if (!path || value.starts_with("/") || origin.starts_with("preset:") || origin.starts_with("<"))
      return value;
    const auto slash = origin.rfind('/');
    return slash == std::string::npos ? value : origin.substr(0, slash + 1) + value;
  }

  template <class Item>
  void items(const ItemList<Item>& list, const toml::node& node, const std::string& origin) {
    const std::string name(list.name);
    const auto* array = node.as_array();
    if (!array || (!array->empty() && !array->is_array_of_tables())) {
      add(name, at(origin, node),
          name + ": expected tables ([[" + name + "]]); got " + describe(node));
      return;
    }
    auto& out = s_.*(list.member);
    out.clear(); // a file's list replaces the inherited one
    std::erase_if(where_, [&](const auto& w) { return w.first.starts_with(name + "["); });
    const auto known = known_item_keys(list);
    for (std::size_t i = 0; i < array->size(); ++i) {
      const auto& t = *(*array)[i].as_table();
      const auto prefix = name + "[" + std::to_string(i) + "]";
      Item item;
      item.line = t.source().begin.line;
      where_[prefix] = at(origin, t);
      for (auto&& [k, value] : t) {
        const std::string key(k.str());
        const auto path = prefix + "." + key;
        const auto here = at(origin, k, value);
        if (const auto* f = find_field(list.fields, key))
          set(*f, item, path, value, here);
        else
          add(path, here, unknown_key_message(path, key, known, prefix + "."));
      }
      for (const auto req : list.required)
        if (!t.contains(req))
          add(prefix + "." + std::string(req), at(origin, t),
              prefix + ": missing the required key `" + std::string(req) + "`");
      out.push_back(std::move(item));
    }
  }

public:
  // Records in the scenario where its keys were set.
  void commit() { s_.set_at = where_; }

  // Items this loader took from another text than the scenario's origin (a preset, the default
  // scenario) keep no line: a line number is only meaningful with the scenario's own origin.
  void forget_foreign_lines() {
    for_each_list([&](const auto& list) {
      auto& items = s_.*(list.member);
      for (std::size_t i = 0; i < items.size(); ++i) {
        const auto w = where_.find(std::string(list.name) + "[" + std::to_string(i) + "]");
        if (w != where_.end() && !w->second.starts_with(s_.origin + ":")) items[i].line = 0;
      }
    });
  }

private:
  Scenario& s_;
  std::vector<Issue> issues_;
  std::map<std::string, std::string> where_; // key path -> "origin:line" that set it
  bool syntax_error_ = false;
};

} // namespace

std::vector<ScenarioIssue> apply_preset_over(Scenario& s, const std::string& name) {
  Loader loader(s);
  loader.apply_preset(name, "preset", 0);
  auto issues = loader.load_issues();
  if (!issues.empty()) return issues;
  loader.forget_foreign_lines();
  loader.commit();
  s.set_at.erase("preset"); // set by an override, not at a line
  return issues;
}

} // namespace ivmc::experiment::detail

namespace ivmc::experiment {

using detail::Loader;
using detail::preset_names;
using detail::quote;

Scenario parse_scenario(std::string_view toml_text, const std::string& origin) {
  Scenario s;
  s.origin = origin;
  Loader loader(s);
  loader.apply(toml_text, origin, 0);
  loader.finish();
  return s;
}

Scenario load_scenario(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ScenarioError({{path, std::string("cannot read: ") + std::strerror(errno)}});
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ScenarioError({{path, "cannot read"}});
  return parse_scenario(text.str(), path);
}

Scenario load_scenario_argument(const std::string& arg) {
  if (arg.empty() || arg == "default") return parse_scenario(default_scenario_text(), "<default>");
  if (!arg.starts_with("preset:")) return load_scenario(arg);
  const auto name = arg.substr(7);
  if (!preset_text(name))
    throw ScenarioError({{arg, "no preset named " + quote(name) + "; " + preset_names()}});
  Scenario s;
  s.origin = arg;
  Loader loader(s);
  loader.apply(default_scenario_text(), "<default>", 0);
  s.name = name; // the preset may name itself
  loader.apply_preset(name, arg, 0);
  loader.finish();
  return s;
}

} // namespace ivmc::experiment
