// The scenario's keys (internal): one table of fields per kind of object (scenario_fields(),
// vm_fields(), ...) maps each key to its member and its type. The TOML loader, the overrides and
// to_toml all go through these tables, so a key cannot be known to one and not to another.
#pragma once

#include "values.hpp"

#include "ivmc/experiment/choices.hpp"
#include "ivmc/experiment/scenario.hpp"

#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ivmc::experiment::detail {

// Stores `v` (of the field's kind); returns what was wrong with it (empty: stored).
template <class T>
std::string store(T& to, const Value& v) {
  if constexpr (kind_of<T>() == Kind::integer) {
    const auto x = std::get<std::int64_t>(v);
    if (std::is_unsigned_v<T> && x < 0)
      return "expected a non-negative integer; got " + std::to_string(x);
    if (std::cmp_greater(x, std::numeric_limits<T>::max()) ||
        std::cmp_less(x, std::numeric_limits<T>::min()))
      return "expected an integer at most " + std::to_string(std::numeric_limits<T>::max()) +
             "; got " + std::to_string(x);
    to = static_cast<T>(x);
  } else if constexpr (kind_of<T>() == Kind::number) {
    to = static_cast<T>(std::get<double>(v));
  } else if constexpr (std::is_enum_v<T>) {
    const auto& text = std::get<std::string>(v);
    const auto e = parse<T>(text);
    if (!e) return "expected one of " + choice_list<T>() + "; got " + quote(text);
    to = *e;
  } else {
    to = std::get<T>(v);
  }
  return {};
}

template <class T>
Value load(const T& from) {
  if constexpr (kind_of<T>() == Kind::integer)
    return Value{static_cast<std::int64_t>(from)};
  else if constexpr (kind_of<T>() == Kind::number)
    return Value{static_cast<double>(from)};
  else if constexpr (std::is_enum_v<T>)
    return Value{std::string(to_string(from))};
  else
    return Value{from};
}

template <class Obj>
struct Field {
  std::string_view key; // dotted for the scenario's sections: "channel.notify"
  Kind kind;
  std::function<std::string(Obj&, const Value&)> set;  // returns what was wrong, or ""
  std::function<std::optional<Value>(const Obj&)> get; // nothing: metadata, not written
};

// A field for the member `m` (of the section `section`).
template <class Obj, class Proj>
Field<Obj> make_field(std::string_view key, Proj proj) {
  using T = std::remove_cvref_t<std::invoke_result_t<Proj, Obj&>>;
  return {key, kind_of<T>(), [proj](Obj& o, const Value& v) { return store(proj(o), v); },
          [proj](const Obj& o) -> std::optional<Value> { return load(proj(o)); }};
}
template <class Obj, class T>
Field<Obj> field(std::string_view key, T Obj::*m) {
  return make_field<Obj>(
      key, [m](auto& o) -> auto& { return o.*m; });
}
template <class Obj, class Section, class T>
Field<Obj> field(std::string_view key, Section Obj::*section, T Section::*m) {
  return make_field<Obj>(
      key, [ section, m ](auto& o) -> auto& { return (o.*section).*m; });
}

// Accepted and not kept (metadata read by presets() only).
template <class Obj>
Field<Obj> ignored(std::string_view key, Kind kind) {
  return {key, kind, [](Obj&, const Value&) { return std::string(); },
          [](const Obj&) -> std::optional<Value> { return std::nullopt; }};
}

const std::vector<Field<Scenario>>& scenario_fields();
const std::vector<Field<VmConfig>>& vm_fields();
const std::vector<Field<WorkloadConfig>>& workload_fields();
const std::vector<Field<EventConfig>>& event_fields();
const std::vector<Field<GeneratorConfig>>& generator_fields();

template <class Item>
struct ItemList {
  std::string_view name;   // "vm": the TOML key and the override prefix
  std::string_view plural; // "VMs", for messages
  std::vector<Item> Scenario::*member;
  const std::vector<Field<Item>>& fields;
  std::vector<std::string_view> required;
};

// Calls f with each of the four lists' descriptions.
template <class F>
void for_each_list(F&& f) {
  static const ItemList<VmConfig> vms{"vm", "VMs", &Scenario::vms, vm_fields(), {"name", "host"}};
  static const ItemList<WorkloadConfig> workloads{
      "workload", "workloads", &Scenario::workloads, workload_fields(), {"from", "to"}};
  static const ItemList<EventConfig> events{
      "event", "events", &Scenario::events, event_fields(), {"kind", "at_s", "vm"}};
  static const ItemList<GeneratorConfig> generators{
      "generator", "generators", &Scenario::generators, generator_fields(), {}};
  f(vms);
  f(workloads);
  f(events);
  f(generators);
}

bool is_list_name(std::string_view k);

template <class Obj>
const Field<Obj>* find_field(const std::vector<Field<Obj>>& fields, std::string_view key) {
  for (const auto& f : fields)
    if (f.key == key) return &f;
  return nullptr;
}

// The scenario's sections: "platform", "channel", ...
std::vector<std::string> section_names();

} // namespace ivmc::experiment::detail
