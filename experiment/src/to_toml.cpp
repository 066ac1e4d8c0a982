// to_toml (to_toml.hpp): every field through the tables of fields, sections and lists in the
// order the loader reads them.
#include "ivmc/experiment/to_toml.hpp"

#include "fields.hpp"
#include "values.hpp"

namespace ivmc::experiment::detail {

namespace {

template <class Obj>
void write_fields(std::string& out, const std::vector<Field<Obj>>& fields, const Obj& obj,
                  std::string_view section) {
  for (const auto& f : fields) {
    std::string_view key = f.key;
    if (!section.empty()) {
      if (!key.starts_with(section) || key.size() <= section.size() || key[section.size()] != '.')
        continue;
      key.remove_prefix(section.size() + 1);
    } else if (key.find('.') != std::string_view::npos) {
      continue;
    }
    if (const auto v = f.get(obj)) out += std::string(key) + " = " + format_value(*v) + "\n";
  }
}

} // namespace

} // namespace ivmc::experiment::detail

namespace ivmc::experiment {

using namespace detail;

std::string to_toml(const Scenario& s) {
  std::string out = "# Scenario " + quote(s.name) + ", written by ivmc (scenarios/FORMAT.md)\n";
  write_fields(out, scenario_fields(), s, "");
  for (const auto* sec : {"platform", "channel", "membership", "pool"}) {
    out += std::string("\n[") + sec + "]\n";
    write_fields(out, scenario_fields(), s, sec);
  }
  if (s.output != OutputSettings{}) { // written only when set: older outputs keep their fingerprint
    out += "\n[output]\n";
    write_fields(out, scenario_fields(), s, "output");
  }
  if (!s.costs.empty() || !s.cost_profile.empty()) {
    out += "\n[costs]\n";
    if (!s.cost_profile.empty()) out += "profile = " + quote(s.cost_profile) + "\n";
    for (const auto& [name, v] : s.costs) out += format_key(name) + " = " + format_number(v) + "\n";
  }
  if (!s.preset.empty() || !s.preset_system.empty()) {
    out += "\n[preset]\n";
    write_fields(out, scenario_fields(), s, "preset");
  }
  for_each_list([&](const auto& list) {
    for (const auto& item : s.*(list.member)) {
      out += "\n[[" + std::string(list.name) + "]]\n";
      write_fields(out, list.fields, item, "");
    }
  });
  return out;
}

} // namespace ivmc::experiment
