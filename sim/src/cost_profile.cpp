// Cost profiles (cost_profile.hpp): TOML through toml++, every problem at its file:line.
#include "ivmc/sim/cost_profile.hpp"

#include "embedded_profiles.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

namespace ivmc::sim {

namespace {

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : std::string(sep)) + s;
  return out;
}

std::string type_of(const toml::node& n) {
  switch (n.type()) {
  case toml::node_type::string:
    return "a string";
  case toml::node_type::integer:
    return "an integer";
  case toml::node_type::floating_point:
    return "a number";
  case toml::node_type::boolean:
    return "a boolean";
  case toml::node_type::table:
    return "a table";
  case toml::node_type::array:
    return "an array";
  default:
    return "a date or time";
  }
}

// Collects problems while reading one profile.
class Reader {
public:
  explicit Reader(std::string origin) : origin_(std::move(origin)) {}

  CostProfile read(std::string_view text) {
    CostProfile p;
    p.origin = origin_;
    toml::table root;
    try {
      root = toml::parse(text, origin_);
    } catch (const toml::parse_error& e) {
      problem(e.source().begin.line, "", "invalid TOML: " + std::string(e.description()));
      throw ProfileError(problems_);
    }
    for (auto&& [k, node] : root) {
      const std::string key(k.str());
      if (key != "name" && key != "description" && key != "provenance" && key != "costs")
        problem(line(k, node), key,
                "unknown key; a profile has name, description, [provenance], [costs]");
    }
    p.name = string(root, "name", "", 1, true);
    p.description = string(root, "description", "", 1, false);
    if (const auto* prov = table(root, "provenance", "", 1)) provenance(*prov, p);
    if (const auto* costs = table(root, "costs", "", 1)) values(*costs, p.costs);
    if (!problems_.empty()) throw ProfileError(problems_);
    return p;
  }

private:
  static std::size_t line(const toml::key& k, const toml::node& n) {
    return k.source().begin.line ? k.source().begin.line : n.source().begin.line;
  }

  void problem(std::size_t at, const std::string& key, const std::string& what) {
    std::string where = origin_;
    if (at) where += ":" + std::to_string(at);
    problems_.push_back(where + ": " + (key.empty() ? "" : key + ": ") + what);
  }

  static std::string path(const std::string& prefix, std::string_view key) {
    return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
  }

  const toml::table* table(const toml::table& t, std::string_view key, const std::string& prefix,
                           std::size_t parent_line) {
    const auto* n = t.get(key);
    if (!n) {
      problem(parent_line, path(prefix, key), "missing (a table)");
      return nullptr;
    }
    if (!n->is_table()) {
      problem(n->source().begin.line, path(prefix, key), "expected a table; got " + type_of(*n));
      return nullptr;
    }
    return n->as_table();
  }

  std::string string(const toml::table& t, std::string_view key, const std::string& prefix,
                     std::size_t parent_line, bool required) {
    const auto* n = t.get(key);
    if (!n) {
      if (required) problem(parent_line, path(prefix, key), "missing (a string)");
      return {};
    }
    if (!n->is_string()) {
      problem(n->source().begin.line, path(prefix, key), "expected a string; got " + type_of(*n));
      return {};
    }
    std::string v = n->as_string()->get();
    if (required && v.empty()) problem(n->source().begin.line, path(prefix, key), "is empty");
    return v;
  }

  // A finite number >= 0 (`positive`: > 0).
  double number(const toml::table& t, std::string_view key, const std::string& prefix,
                std::size_t parent_line, bool positive) {
    const auto* n = t.get(key);
    if (!n) {
      problem(parent_line, path(prefix, key), "missing (a number)");
      return 0;
    }
    if (!n->is_number()) {
      problem(n->source().begin.line, path(prefix, key), "expected a number; got " + type_of(*n));
      return 0;
    }
    const double v = n->value<double>().value_or(0);
    if (!std::isfinite(v) || v < 0 || (positive && v == 0))
      problem(n->source().begin.line, path(prefix, key),
              std::string("expected a finite number ") + (positive ? "> 0" : ">= 0") + "; got " +
                  std::to_string(v));
    return v;
  }

  void provenance(const toml::table& t, CostProfile& p) {
    const std::size_t at = t.source().begin.line;
    static const std::set<std::string> known = {
        "machine",         "cpu",          "date",       "ivmc_commit", "backend", "method", "load",
        "residual_median", "residual_max", "measurement"};
    for (auto&& [k, node] : t)
      if (!known.count(std::string(k.str())))
        problem(line(k, node), "provenance." + std::string(k.str()),
                "unknown key; known: machine, cpu, date, ivmc_commit, backend, method, load, "
                "residual_median, residual_max, [[provenance.measurement]]");
    p.machine = string(t, "machine", "provenance", at, true);
    p.cpu = string(t, "cpu", "provenance", at, true);
    p.date = string(t, "date", "provenance", at, true);
    p.ivmc_commit = string(t, "ivmc_commit", "provenance", at, true);
    p.backend = string(t, "backend", "provenance", at, true);
    p.method = string(t, "method", "provenance", at, true);
    string(t, "load", "provenance", at, false);
    p.residual_median = number(t, "residual_median", "provenance", at, false);
    p.residual_max = number(t, "residual_max", "provenance", at, false);
    const auto* m = t.get("measurement");
    if (!m || !m->is_array_of_tables() || m->as_array()->empty()) {
      problem(m ? m->source().begin.line : at, "provenance.measurement",
              "expected the measurements the values were fitted to ([[provenance.measurement]] "
              "tables, at least one)");
      return;
    }
    std::size_t i = 0;
    for (const auto& item : *m->as_array()) {
      const auto& mt = *item.as_table();
      const std::string prefix = "provenance.measurement[" + std::to_string(i++) + "]";
      const std::size_t mat = mt.source().begin.line;
      for (auto&& [k, node] : mt) {
        const std::string key(k.str());
        if (key != "name" && key != "unit" && key != "measured" && key != "model" &&
            key != "fitted")
          problem(line(k, node), prefix + "." + key,
                  "unknown key; known: name, unit, measured, model, fitted");
      }
      ProfileMeasurement pm;
      pm.name = string(mt, "name", prefix, mat, true);
      pm.unit = string(mt, "unit", prefix, mat, true);
      pm.measured = number(mt, "measured", prefix, mat, true);
      pm.model = number(mt, "model", prefix, mat, false);
      if (const auto* f = mt.get("fitted")) {
        if (f->is_boolean())
          pm.fitted = f->as_boolean()->get();
        else
          problem(f->source().begin.line, prefix + ".fitted",
                  "expected a boolean; got " + type_of(*f));
      }
      p.measurements.push_back(std::move(pm));
    }
  }

  void values(const toml::table& t, CostModel& c) {
    for (auto&& [k, node] : t) {
      const std::string name(k.str());
      const std::size_t at = line(k, node);
      if (!node.is_number()) {
        problem(at, "costs." + name, "expected a number; got " + type_of(node));
        continue;
      }
      try {
        c.set(name, node.value<double>().value_or(0));
      } catch (const std::invalid_argument& e) {
        problem(at, "", e.what()); // names the parameter (and the known ones when unknown)
      }
    }
  }

  std::string origin_;
  std::vector<std::string> problems_;
};

} // namespace

ProfileError::ProfileError(std::vector<std::string> problems)
    : std::runtime_error(join(problems, "\n")), problems_(std::move(problems)) {}

std::vector<std::string> builtin_cost_profiles() {
  std::vector<std::string> out;
  for (const auto& f : embedded::profiles()) out.emplace_back(f.name);
  std::sort(out.begin(), out.end());
  return out;
}

CostProfile parse_cost_profile(std::string_view text, const std::string& origin) {
  return Reader(origin).read(text);
}

CostProfile load_cost_profile(const std::string& name_or_path) {
  const std::string name = name_or_path.empty() ? std::string(kDefaultCostProfile) : name_or_path;
  for (const auto& f : embedded::profiles())
    if (f.name == name) return parse_cost_profile(f.text, "builtin:" + name);
  const bool path = name.find('/') != std::string::npos || name.ends_with(".toml");
  if (!path) {
    throw ProfileError({"costs.profile: no built-in cost profile named \"" + name +
                        "\"; built-in: " + join(builtin_cost_profiles(), ", ") +
                        " (or give a profile file's path)"});
  }
  std::ifstream in(name);
  if (!in) throw ProfileError({name + ": cannot read the cost profile file"});
  std::ostringstream text;
  text << in.rdbuf();
  return parse_cost_profile(text.str(), name);
}

} // namespace ivmc::sim
