// The scenario loader: TOML (toml++) to Scenario, validation, `key=value` overrides, to_toml,
// and the embedded default scenario and presets.
//
// One table of fields per kind of object (scenario_fields(), vm_fields(), ...) maps each key to
// its member and its type; the TOML loader, the overrides and to_toml all go through those
// tables, so a key cannot be known to one and not to another.
//
// Issues carry the key path they are about ("workload[1].to"). While loading, every key is
// remembered with where it was set ("file.toml:14", or "preset:xenloop:3" for a key that came
// from a preset), so a semantic problem found after loading is reported at the line that set the
// offending value.
#include "ivmc/sim/scenario.hpp"

#include "embedded_scenarios.hpp"
#include "quoted.hpp"

#include "ivmc/core/channel.hpp"
#include "ivmc/core/link.hpp"
#include "ivmc/core/membership_sources.hpp"
#include "ivmc/core/pool.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace ivmc::sim {

namespace {

std::string join_issues(const std::vector<ScenarioIssue>& issues) {
  std::string out;
  for (const auto& i : issues) {
    if (!out.empty()) out += '\n';
    out += i.where + ": " + i.what;
  }
  return out;
}

} // namespace

ScenarioError::ScenarioError(std::vector<ScenarioIssue> issues)
    : std::runtime_error(join_issues(issues)), issues_(std::move(issues)) {}

namespace {

// --- Values -----------------------------------------------------------------------------------

using StringPairs = std::vector<std::pair<std::string, std::string>>;
// One alternative per Kind, in the same order.
using Value = std::variant<bool, std::int64_t, double, std::string, std::vector<std::string>,
                           StringPairs, std::vector<double>>;
enum class Kind { boolean, integer, number, string, strings, pairs, numbers };

std::string_view expected(Kind k) {
  switch (k) {
  case Kind::boolean:
    return "true or false";
  case Kind::integer:
    return "an integer";
  case Kind::number:
    return "a number";
  case Kind::string:
    return "a string";
  case Kind::strings:
    return "an array of strings";
  case Kind::pairs:
    return "an array of [\"vm\", \"vm\"] pairs";
  case Kind::numbers:
    return "an array of numbers";
  }
  return "?";
}

template <class T>
constexpr Kind kind_of() {
  if constexpr (std::is_same_v<T, bool>)
    return Kind::boolean;
  else if constexpr (std::is_integral_v<T>)
    return Kind::integer;
  else if constexpr (std::is_floating_point_v<T>)
    return Kind::number;
  else if constexpr (std::is_same_v<T, std::string>)
    return Kind::string;
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
std::string format_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string out(buf, r.ptr);
  if (out.find_first_of(".eE") == std::string::npos) out += ".0";
  return out;
}

// A TOML basic string.
std::string quote(std::string_view s) {
  return quoted(s);
}

// A TOML key: bare when it can be.
std::string format_key(std::string_view k) {
  const bool bare = !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
  return bare ? std::string(k) : quote(k);
}

std::string format_value(const Value& v) {
  struct {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return format_number(d); }
    std::string operator()(const std::string& s) const { return quote(s); }
    std::string operator()(const std::vector<std::string>& l) const {
      std::string out = "[";
      for (std::size_t i = 0; i < l.size(); ++i) out += (i ? ", " : "") + quote(l[i]);
      return out + "]";
    }
    std::string operator()(const StringPairs& l) const {
      std::string out = "[";
      for (std::size_t i = 0; i < l.size(); ++i)
        out += (i ? ", [" : "[") + quote(l[i].first) + ", " + quote(l[i].second) + "]";
      return out + "]";
    }
    std::string operator()(const std::vector<double>& l) const {
      std::string out = "[";
      for (std::size_t i = 0; i < l.size(); ++i) out += (i ? ", " : "") + format_number(l[i]);
      return out + "]";
    }
  } visitor;
  return std::visit(visitor, v);
}

// What a TOML node holds, for "expected X; got Y".
std::string describe(const toml::node& n) {
  if (const auto* s = n.as_string()) return quote(s->get());
  if (const auto* i = n.as_integer()) return std::to_string(i->get());
  if (const auto* d = n.as_floating_point()) return format_number(d->get());
  if (const auto* b = n.as_boolean()) return b->get() ? "true" : "false";
  if (n.is_table()) return "a table";
  if (n.is_array()) return "an array";
  return "a date or time";
}

std::optional<Value> from_node(const toml::node& n, Kind k) {
  switch (k) {
  case Kind::boolean:
    if (const auto* b = n.as_boolean()) return Value{b->get()};
    break;
  case Kind::integer:
    if (const auto* i = n.as_integer()) return Value{std::int64_t{i->get()}};
    break;
  case Kind::number:
    if (const auto* d = n.as_floating_point()) return Value{d->get()};
    if (const auto* i = n.as_integer()) return Value{static_cast<double>(i->get())};
    break;
  case Kind::string:
    if (const auto* s = n.as_string()) return Value{s->get()};
    break;
  case Kind::strings:
    if (const auto* a = n.as_array()) {
      std::vector<std::string> out;
      for (const auto& e : *a) {
        const auto* s = e.as_string();
        if (!s) return std::nullopt;
        out.push_back(s->get());
      }
      return Value{std::move(out)};
    }
    break;
  case Kind::pairs:
    if (const auto* a = n.as_array()) {
      StringPairs out;
      for (const auto& e : *a) {
        const auto* p = e.as_array();
        if (!p || p->size() != 2 || !(*p)[0].is_string() || !(*p)[1].is_string())
          return std::nullopt;
        out.emplace_back((*p)[0].as_string()->get(), (*p)[1].as_string()->get());
      }
      return Value{std::move(out)};
    }
    break;
  case Kind::numbers:
    if (const auto* a = n.as_array()) {
      std::vector<double> out;
      for (const auto& e : *a) {
        if (const auto* d = e.as_floating_point())
          out.push_back(d->get());
        else if (const auto* i = e.as_integer())
          out.push_back(static_cast<double>(i->get()));
        else
          return std::nullopt;
      }
      return Value{std::move(out)};
    }
    break;
  }
  return std::nullopt;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_commas(std::string_view s) {
  std::vector<std::string_view> out;
  if (trim(s).empty()) return out;
  for (;;) {
    const auto comma = s.find(',');
    out.push_back(trim(s.substr(0, comma)));
    if (comma == std::string_view::npos) return out;
    s.remove_prefix(comma + 1);
  }
}

std::optional<std::int64_t> parse_integer(std::string_view t) {
  std::int64_t v = 0;
  const auto r = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || r.ec != std::errc{} || r.ptr != t.data() + t.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(std::string_view t) {
  double v = 0;
  const auto r = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || r.ec != std::errc{} || r.ptr != t.data() + t.size()) return std::nullopt;
  return v;
}

// An override's value text as a value of kind `k`: scalars as written (strings unquoted, or in
// double quotes), lists in TOML syntax (["a", "b"]) or comma-separated (a,b; pairs a:b,c:d).
std::optional<Value> from_text(std::string_view text, Kind k) {
  const auto t = trim(text);
  switch (k) {
  case Kind::boolean:
    if (t == "true") return Value{true};
    if (t == "false") return Value{false};
    return std::nullopt;
  case Kind::integer:
    if (auto i = parse_integer(t)) return Value{*i};
    return std::nullopt;
  case Kind::number:
    if (auto d = parse_double(t)) return Value{*d};
    return std::nullopt;
  case Kind::string:
    if (t.size() >= 2 && t.front() == '"' && t.back() == '"')
      return Value{std::string(t.substr(1, t.size() - 2))};
    return Value{std::string(t)};
  default:
    break;
  }
  if (t.starts_with('[')) {
    try {
      const auto doc = toml::parse("v = " + std::string(t));
      if (const auto* n = doc.get("v")) return from_node(*n, k);
    } catch (const toml::parse_error&) {
    }
    return std::nullopt;
  }
  if (k == Kind::strings) {
    std::vector<std::string> out;
    for (auto part : split_commas(t)) out.emplace_back(part);
    return Value{std::move(out)};
  }
  if (k == Kind::numbers) {
    std::vector<double> out;
    for (auto part : split_commas(t)) {
      auto d = parse_double(part);
      if (!d) return std::nullopt;
      out.push_back(*d);
    }
    return Value{std::move(out)};
  }
  StringPairs out;
  for (auto part : split_commas(t)) {
    const auto colon = part.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    out.emplace_back(trim(part.substr(0, colon)), trim(part.substr(colon + 1)));
  }
  return Value{std::move(out)};
}

// --- Fields -----------------------------------------------------------------------------------

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

using S = Scenario;

const std::vector<Field<S>>& scenario_fields() {
  static const std::vector<Field<S>> fields = {
      field("name", &S::name),
      field("description", &S::description),
      field("duration_s", &S::duration_s),
      field("warmup_s", &S::warmup_s),
      field("seed", &S::seed),
      field("latency_percentiles", &S::latency_percentiles),

      field("platform.hosts", &S::platform, &PlatformConfig::hosts),
      field("platform.hypervisor", &S::platform, &PlatformConfig::hypervisor),
      field("platform.guest_nic", &S::platform, &PlatformConfig::guest_nic),
      field("platform.link_gbps", &S::platform, &PlatformConfig::link_gbps),
      field("platform.link_latency_us", &S::platform, &PlatformConfig::link_latency_us),
      field("platform.migration_gbps", &S::platform, &PlatformConfig::migration_gbps),

      field("channel.enabled", &S::channel, &ChannelSettings::enabled),
      field("channel.layer", &S::channel, &ChannelSettings::layer),
      field("channel.ring_kib", &S::channel, &ChannelSettings::ring_kib),
      field("channel.notify", &S::channel, &ChannelSettings::notify),
      field("channel.atw_batch", &S::channel, &ChannelSettings::atw_batch),
      field("channel.atw_window_us", &S::channel, &ChannelSettings::atw_window_us),
      field("channel.spin_budget_us", &S::channel, &ChannelSettings::spin_budget_us),
      field("channel.migration", &S::channel, &ChannelSettings::migration),
      field("channel.trust", &S::channel, &ChannelSettings::trust),
      field("channel.trusted", &S::channel, &ChannelSettings::trusted),

      field("membership.detection", &S::membership, &MembershipConfig::detection),
      field("membership.period_ms", &S::membership, &MembershipConfig::period_ms),
      field("membership.phase_ms", &S::membership, &MembershipConfig::phase_ms),
      field("membership.propagation_delay_us", &S::membership,
            &MembershipConfig::propagation_delay_us),
      field("membership.period_min_ms", &S::membership, &MembershipConfig::period_min_ms),
      field("membership.period_max_ms", &S::membership, &MembershipConfig::period_max_ms),
      field("membership.watch_delay_us", &S::membership, &MembershipConfig::watch_delay_us),
      field("membership.race", &S::membership, &MembershipConfig::race),
      field("membership.stale_timeout_us", &S::membership, &MembershipConfig::stale_timeout_us),
      field("membership.probe_cost_us", &S::membership, &MembershipConfig::probe_cost_us),

      field("pool.enabled", &S::pool, &PoolSettings::enabled),
      field("pool.allocation", &S::pool, &PoolSettings::allocation),
      field("pool.pool_mib", &S::pool, &PoolSettings::pool_mib),
      field("pool.chunk_kib", &S::pool, &PoolSettings::chunk_kib),
      field("pool.max_pairs", &S::pool, &PoolSettings::max_pairs),
      field("pool.rebalance_ms", &S::pool, &PoolSettings::rebalance_ms),

      // [preset]: metadata. A preset file names its system; to_toml writes the name too, so a
      // written scenario keeps saying which preset it came from without re-applying it.
      field("preset.name", &S::preset),
      field("preset.system", &S::preset_system),
      ignored<S>("preset.summary", Kind::string),
      ignored<S>("preset.survey", Kind::string),
  };
  return fields;
}

const std::vector<Field<VmConfig>>& vm_fields() {
  static const std::vector<Field<VmConfig>> fields = {
      field("name", &VmConfig::name),
      field("host", &VmConfig::host),
      field("ram_mib", &VmConfig::ram_mib),
  };
  return fields;
}

const std::vector<Field<WorkloadConfig>>& workload_fields() {
  using W = WorkloadConfig;
  static const std::vector<Field<W>> fields = {
      field("kind", &W::kind),
      field("from", &W::from),
      field("to", &W::to),
      field("message_bytes", &W::message_bytes),
      field("start_s", &W::start_s),
      field("stop_s", &W::stop_s),
      field("rate_per_s", &W::rate_per_s),
      field("arrivals", &W::arrivals),
  };
  return fields;
}

const std::vector<Field<EventConfig>>& event_fields() {
  using E = EventConfig;
  static const std::vector<Field<E>> fields = {
      field("kind", &E::kind), field("at_s", &E::at_s),       field("vm", &E::vm),
      field("host", &E::host), field("ram_mib", &E::ram_mib),
  };
  return fields;
}

const std::vector<Field<GeneratorConfig>>& generator_fields() {
  using G = GeneratorConfig;
  static const std::vector<Field<G>> fields = {
      field("kind", &G::kind),       field("rate_per_s", &G::rate_per_s), field("vms", &G::vms),
      field("start_s", &G::start_s), field("stop_s", &G::stop_s),
  };
  return fields;
}

// An array of tables: [[vm]], [[workload]], [[event]], [[generator]].
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

bool is_list_name(std::string_view k) {
  return k == "vm" || k == "workload" || k == "event" || k == "generator";
}

template <class Obj>
const Field<Obj>* find_field(const std::vector<Field<Obj>>& fields, std::string_view key) {
  for (const auto& f : fields)
    if (f.key == key) return &f;
  return nullptr;
}

std::vector<std::string> section_names() {
  std::vector<std::string> out;
  for (const auto& f : scenario_fields()) {
    const auto dot = f.key.find('.');
    if (dot == std::string_view::npos) continue;
    std::string sec(f.key.substr(0, dot));
    if (std::find(out.begin(), out.end(), sec) == out.end()) out.push_back(sec);
  }
  return out;
}

// --- Suggestions ------------------------------------------------------------------------------

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

std::string unknown_key_message(const std::string& shown, std::string_view key,
                                const std::vector<std::string>& known,
                                const std::string& prefix = "") {
  std::string msg = "unknown key `" + shown + "`";
  if (auto s = suggest(key, known); !s.empty()) msg += "; did you mean `" + prefix + s + "`?";
  return msg;
}

// Every key a scenario file may hold at the top level or in a section (for suggestions).
std::vector<std::string> known_scenario_keys() {
  std::vector<std::string> out;
  for (const auto& f : scenario_fields()) out.emplace_back(f.key);
  for (auto sec : section_names()) out.push_back(sec);
  for (auto l : {"vm", "workload", "event", "generator", "costs", "preset"}) out.emplace_back(l);
  return out;
}

template <class Item>
std::vector<std::string> known_item_keys(const ItemList<Item>& list) {
  std::vector<std::string> out;
  for (const auto& f : list.fields) out.emplace_back(f.key);
  return out;
}

// --- Issues -----------------------------------------------------------------------------------

struct Issue {
  std::string key;   // the key path it is about ("workload[1].to"), "" for the whole file
  std::string where; // "origin:line" when known
  std::string what;  // complete when `where` was set at creation; otherwise without the key
};

// The item a key path such as "workload[1].to" is about: ("workload[1]", its line), if any.
std::optional<std::pair<std::string, std::size_t>> item_of(const Scenario& s,
                                                           const std::string& key) {
  std::optional<std::pair<std::string, std::size_t>> out;
  const auto bracket = key.find('[');
  const auto close = key.find(']');
  if (bracket == std::string::npos || close == std::string::npos || close < bracket) return out;
  const auto name = std::string_view(key).substr(0, bracket);
  const auto index = parse_integer(std::string_view(key).substr(bracket + 1, close - bracket - 1));
  if (!index || *index < 0) return out;
  for_each_list([&](const auto& list) {
    if (list.name != name) return;
    const auto& items = s.*(list.member);
    const auto i = static_cast<std::size_t>(*index);
    out.emplace(key.substr(0, close + 1), i < items.size() ? items[i].line : 0);
  });
  return out;
}

// A check's issue as reported: at the line that set the key if known (then `what` names the
// key), else at the key path.
ScenarioIssue resolve(const Issue& issue, const Scenario& s,
                      const std::map<std::string, std::string>& where) {
  if (!issue.where.empty()) return {issue.where, issue.what};
  std::string at;
  if (auto w = where.find(issue.key); w != where.end()) {
    at = w->second;
  } else if (auto item = item_of(s, issue.key)) {
    if (auto w2 = where.find(item->first); w2 != where.end())
      at = w2->second;
    else if (item->second != 0)
      at = s.origin + ":" + std::to_string(item->second);
  }
  if (at.empty()) return {issue.key, issue.what};
  return {at, issue.key.empty() ? issue.what : issue.key + ": " + issue.what};
}

// Issues in file order: "origin:line" ones by origin and line, key paths after.
void sort_issues(std::vector<ScenarioIssue>& issues) {
  auto order = [](const ScenarioIssue& i) {
    const auto colon = i.where.rfind(':');
    if (colon != std::string::npos) {
      if (auto line = parse_integer(std::string_view(i.where).substr(colon + 1)))
        return std::tuple(0, i.where.substr(0, colon), *line);
    }
    return std::tuple(1, std::string(), std::int64_t{0});
  };
  std::stable_sort(issues.begin(), issues.end(),
                   [&](const auto& a, const auto& b) { return order(a) < order(b); });
}

// --- Validation -------------------------------------------------------------------------------

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

template <class Names>
std::vector<std::string> to_strings(const Names& names) {
  std::vector<std::string> out;
  for (const auto& n : names) out.emplace_back(n);
  return out;
}

std::vector<std::string> notify_names() {
  return to_strings(std::vector<std::string_view>{
      to_string(NotifyPolicy::polling), to_string(NotifyPolicy::on_demand),
      to_string(NotifyPolicy::per_packet), to_string(NotifyPolicy::atw),
      to_string(NotifyPolicy::spin_then_block)});
}
std::vector<std::string> race_names() {
  return to_strings(std::vector<std::string_view>{to_string(RacePolicy::prevention),
                                                  to_string(RacePolicy::resolution),
                                                  to_string(RacePolicy::none)});
}
std::vector<std::string> pool_names() {
  return to_strings(std::vector<std::string_view>{to_string(PoolPolicy::static_equal),
                                                  to_string(PoolPolicy::proportional)});
}

bool is_power_of_two(std::uint64_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

class Checker {
public:
  explicit Checker(const Scenario& s) : s_(s) {}

  std::vector<Issue> run() {
    top();
    platform();
    vms();
    channel();
    membership();
    pool();
    costs();
    workloads();
    events();
    generators();
    return std::move(out_);
  }

private:
  void bad(std::string key, std::string what) {
    out_.push_back({std::move(key), "", std::move(what)});
  }
  void greater_than_zero(const std::string& key, double v) {
    if (!(v > 0) || !std::isfinite(v)) bad(key, "expected a number > 0; got " + format_number(v));
  }
  void at_least_zero(const std::string& key, double v) {
    if (!(v >= 0) || !std::isfinite(v)) bad(key, "expected a number >= 0; got " + format_number(v));
  }
  void one_of(const std::string& key, const std::string& v, const std::vector<std::string>& ok) {
    if (std::find(ok.begin(), ok.end(), v) == ok.end())
      bad(key, "expected one of " + join(ok) + "; got " + quote(v));
  }
  void host(const std::string& key, std::size_t h) {
    if (h >= s_.platform.hosts)
      bad(key, "host " + std::to_string(h) + " does not exist (platform.hosts = " +
                   std::to_string(s_.platform.hosts) + ": hosts 0.." +
                   std::to_string(s_.platform.hosts == 0 ? 0 : s_.platform.hosts - 1) + ")");
  }
  // A time of the run: within [0, duration_s].
  void time(const std::string& key, double t) {
    if (!(t >= 0 && t <= s_.duration_s))
      bad(key, "expected a time in [0, duration_s = " + format_number(s_.duration_s) + "]; got " +
                   format_number(t));
  }
  // An interval's end: < 0 (until the end), or in (start, duration_s].
  void stop(const std::string& key, double start, double stop_s) {
    if (stop_s < 0) return;
    if (!(stop_s > start && stop_s <= s_.duration_s))
      bad(key, "expected a negative value (until duration_s) or a time in (start_s = " +
                   format_number(start) + ", duration_s = " + format_number(s_.duration_s) +
                   "]; got " + format_number(stop_s));
  }
  // A VM that exists at some point of the run (declared or created by an event).
  void known_vm(const std::string& key, const std::string& name) {
    if (name.empty())
      bad(key, "expected a VM name; got \"\"");
    else if (!known_.count(name))
      bad(key, "no VM named " + quote(name) + vm_list());
  }
  std::string vm_list() const {
    std::vector<std::string> names(known_.begin(), known_.end());
    return names.empty() ? " (the scenario has no VMs)" : " (the VMs: " + join(names) + ")";
  }

  void top() {
    if (s_.name.empty()) bad("name", "expected a non-empty name");
    greater_than_zero("duration_s", s_.duration_s);
    if (!(s_.warmup_s >= 0 && s_.warmup_s < s_.duration_s))
      bad("warmup_s", "expected a time in [0, duration_s = " + format_number(s_.duration_s) +
                          "); got " + format_number(s_.warmup_s));
    if (s_.seed > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      bad("seed", "expected an integer at most 2^63-1; got " + std::to_string(s_.seed));
    for (const double p : s_.latency_percentiles)
      if (!(p > 0 && p < 100))
        bad("latency_percentiles", "expected percentiles in (0, 100); got " + format_number(p));
  }

  void platform() {
    const auto& p = s_.platform;
    if (p.hosts == 0) bad("platform.hosts", "expected at least 1 host; got 0");
    one_of("platform.hypervisor", p.hypervisor, {"xen", "kvm"});
    one_of("platform.guest_nic", p.guest_nic, {"virtio", "emulated"});
    greater_than_zero("platform.link_gbps", p.link_gbps);
    at_least_zero("platform.link_latency_us", p.link_latency_us);
    greater_than_zero("platform.migration_gbps", p.migration_gbps);
  }

  void vms() {
    std::map<std::string, std::size_t> first;
    for (std::size_t i = 0; i < s_.vms.size(); ++i) {
      const auto& vm = s_.vms[i];
      const auto key = "vm[" + std::to_string(i) + "]";
      if (vm.name.empty())
        bad(key + ".name", "expected a non-empty VM name");
      else if (auto [it, fresh] = first.emplace(vm.name, i); !fresh)
        bad(key + ".name", "VM name " + quote(vm.name) + " is already used by vm[" +
                               std::to_string(it->second) + "]");
      host(key + ".host", vm.host);
      if (vm.ram_mib == 0) bad(key + ".ram_mib", "expected at least 1 MiB; got 0");
      if (!vm.name.empty()) known_.insert(vm.name);
    }
    for (const auto& e : s_.events)
      if (e.kind == "create" && !e.vm.empty()) known_.insert(e.vm);
  }

  void channel() {
    const auto& c = s_.channel;
    if (c.layer < 1 || c.layer > 3)
      bad("channel.layer", "expected 1, 2 or 3; got " + std::to_string(c.layer));
    if (!is_power_of_two(c.ring_kib) || c.ring_kib < 4 || c.ring_kib > 65536)
      bad("channel.ring_kib",
          "expected a power of two from 4 to 65536; got " + std::to_string(c.ring_kib));
    one_of("channel.notify", c.notify, notify_names());
    if (c.atw_batch == 0) bad("channel.atw_batch", "expected at least 1 message; got 0");
    greater_than_zero("channel.atw_window_us", c.atw_window_us);
    at_least_zero("channel.spin_budget_us", c.spin_budget_us);
    one_of("channel.trust", c.trust, {"open", "list"});
    if (c.trust == "list" && c.trusted.empty())
      bad("channel.trust", "trust = \"list\" needs at least one pair in channel.trusted");
    for (const auto& [a, b] : c.trusted) {
      known_vm("channel.trusted", a);
      known_vm("channel.trusted", b);
      if (a == b && !a.empty())
        bad("channel.trusted", "a pair names " + quote(a) + " twice; expected two VMs");
    }
  }

  void membership() {
    const auto& m = s_.membership;
    one_of("membership.detection", m.detection, to_strings(membership_source_kinds()));
    greater_than_zero("membership.period_ms", m.period_ms);
    at_least_zero("membership.phase_ms", m.phase_ms);
    at_least_zero("membership.propagation_delay_us", m.propagation_delay_us);
    greater_than_zero("membership.period_min_ms", m.period_min_ms);
    if (!(m.period_max_ms >= m.period_min_ms) || !std::isfinite(m.period_max_ms))
      bad("membership.period_max_ms",
          "expected at least period_min_ms = " + format_number(m.period_min_ms) + "; got " +
              format_number(m.period_max_ms));
    if (m.detection == "adaptive" &&
        !(m.period_ms >= m.period_min_ms && m.period_ms <= m.period_max_ms))
      bad("membership.period_ms",
          "adaptive: expected the initial period within [" + format_number(m.period_min_ms) + ", " +
              format_number(m.period_max_ms) + "]; got " + format_number(m.period_ms));
    at_least_zero("membership.watch_delay_us", m.watch_delay_us);
    one_of("membership.race", m.race, race_names());
    greater_than_zero("membership.stale_timeout_us", m.stale_timeout_us);
    at_least_zero("membership.probe_cost_us", m.probe_cost_us);
  }

  void pool() {
    const auto& p = s_.pool;
    one_of("pool.allocation", p.allocation, pool_names());
    if (p.pool_mib == 0) bad("pool.pool_mib", "expected at least 1 MiB; got 0");
    if (!is_power_of_two(p.chunk_kib) || p.chunk_kib < 4 || p.chunk_kib > 65536)
      bad("pool.chunk_kib",
          "expected a power of two from 4 to 65536; got " + std::to_string(p.chunk_kib));
    else if (p.pool_mib != 0 && p.chunk_kib > p.pool_mib * 1024)
      bad("pool.chunk_kib", "a chunk of " + std::to_string(p.chunk_kib) +
                                " KiB is larger than the pool (" + std::to_string(p.pool_mib) +
                                " MiB)");
    if (p.max_pairs == 0)
      bad("pool.max_pairs", "expected at least 1 pair; got 0");
    else if (p.allocation == "static_equal" && is_power_of_two(p.chunk_kib) &&
             std::uint64_t{p.max_pairs} * p.chunk_kib > std::uint64_t{p.pool_mib} * 1024)
      bad("pool.max_pairs", std::to_string(p.max_pairs) + " pairs of at least one " +
                                std::to_string(p.chunk_kib) + " KiB chunk do not fit in " +
                                std::to_string(p.pool_mib) + " MiB");
    greater_than_zero("pool.rebalance_ms", p.rebalance_ms);
  }

  void costs() {
    for (const auto& [name, v] : s_.costs) {
      if (name.empty()) bad("costs", "a cost without a name");
      at_least_zero("costs." + name, v);
    }
  }

  void workloads() {
    static const std::vector<std::string> kinds = {"tcp_stream", "udp_stream", "tcp_rr", "udp_rr"};
    for (std::size_t i = 0; i < s_.workloads.size(); ++i) {
      const auto& w = s_.workloads[i];
      const auto key = "workload[" + std::to_string(i) + "]";
      one_of(key + ".kind", w.kind, kinds);
      known_vm(key + ".from", w.from);
      known_vm(key + ".to", w.to);
      if (w.from == w.to && !w.from.empty())
        bad(key + ".to", "a workload from " + quote(w.from) + " to itself");
      if (w.message_bytes < 16 || w.message_bytes > (64u << 20))
        bad(key + ".message_bytes",
            "expected 16 to 67108864 (64 MiB); got " + std::to_string(w.message_bytes));
      time(key + ".start_s", w.start_s);
      stop(key + ".stop_s", w.start_s, w.stop_s);
      at_least_zero(key + ".rate_per_s", w.rate_per_s);
      one_of(key + ".arrivals", w.arrivals, {"uniform", "poisson"});
    }
  }

  // Events in time order (ties in file order): a VM must exist when an event names it.
  void events() {
    static const std::vector<std::string> kinds = {"migrate", "create", "shutdown"};
    std::vector<std::size_t> order(s_.events.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return s_.events[a].at_s < s_.events[b].at_s;
    });
    std::set<std::string> alive;
    for (const auto& vm : s_.vms) alive.insert(vm.name);
    std::map<std::string, double> gone; // shut down, when
    for (const std::size_t i : order) {
      const auto& e = s_.events[i];
      const auto key = "event[" + std::to_string(i) + "]";
      one_of(key + ".kind", e.kind, kinds);
      time(key + ".at_s", e.at_s);
      if (e.kind == "migrate" || e.kind == "create") host(key + ".host", e.host);
      if (e.kind == "create" && e.ram_mib == 0)
        bad(key + ".ram_mib", "expected at least 1 MiB; got 0");
      if (e.vm.empty()) {
        bad(key + ".vm", "expected a VM name; got \"\"");
        continue;
      }
      if (e.kind == "create") {
        if (alive.count(e.vm)) bad(key + ".vm", "VM " + quote(e.vm) + " already exists");
        alive.insert(e.vm);
        gone.erase(e.vm);
      } else if (e.kind == "migrate" || e.kind == "shutdown") {
        if (alive.count(e.vm)) {
          if (e.kind == "shutdown") {
            alive.erase(e.vm);
            gone[e.vm] = e.at_s;
          }
        } else if (auto g = gone.find(e.vm); g != gone.end()) {
          bad(key + ".vm",
              "VM " + quote(e.vm) + " was shut down at " + format_number(g->second) + " s");
        } else if (known_.count(e.vm)) {
          bad(key + ".vm", "VM " + quote(e.vm) + " is created only later");
        } else {
          bad(key + ".vm", "no VM named " + quote(e.vm) + vm_list());
        }
      }
    }
  }

  void generators() {
    static const std::vector<std::string> kinds = {"migrate", "create", "shutdown"};
    for (std::size_t i = 0; i < s_.generators.size(); ++i) {
      const auto& g = s_.generators[i];
      const auto key = "generator[" + std::to_string(i) + "]";
      one_of(key + ".kind", g.kind, kinds);
      at_least_zero(key + ".rate_per_s", g.rate_per_s);
      time(key + ".start_s", g.start_s);
      stop(key + ".stop_s", g.start_s, g.stop_s);
      if (g.kind != "create")
        for (const auto& vm : g.vms) known_vm(key + ".vms", vm);
      if (g.kind == "migrate" && s_.platform.hosts < 2)
        bad(key + ".kind", "migrate needs at least 2 hosts; platform.hosts = " +
                               std::to_string(s_.platform.hosts));
    }
  }

  const Scenario& s_;
  std::set<std::string> known_; // every VM that exists at some point
  std::vector<Issue> out_;
};

// --- Loading ----------------------------------------------------------------------------------

std::string preset_names() {
  std::vector<std::string> names;
  for (const auto& f : embedded::presets()) names.emplace_back(f.name);
  return names.empty() ? "there are none" : "the presets are " + join(names);
}

// Applies TOML texts over a scenario, remembering where each key was set and collecting every
// problem (not stopping at the first).
class Loader {
public:
  explicit Loader(Scenario& s) : s_(s) {}

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
      for (const auto& i : Checker(s_).run())
        if (!keys.count(i.key)) out.push_back(resolve(i, s_, where_));
    }
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
      if (const auto v = from_node(node, Kind::number))
        s_.costs[std::string(k.str())] = std::get<double>(*v);
      else
        add(path, here, path + ": expected a number; got " + describe(node));
    }
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

// --- Overrides --------------------------------------------------------------------------------

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

// --- Writing ----------------------------------------------------------------------------------

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

// --- Public -----------------------------------------------------------------------------------

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

std::vector<ScenarioIssue> validate(const Scenario& s) {
  std::vector<ScenarioIssue> out;
  for (const auto& i : Checker(s).run()) out.push_back(resolve(i, s, {}));
  return out;
}

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
    Loader loader(s);
    loader.apply_preset(std::string(trim(text)), "preset", 0);
    if (auto issues = loader.load_issues(); !issues.empty()) throw ScenarioError(std::move(issues));
    loader.forget_foreign_lines();
    return;
  }
  if (key.starts_with("costs.")) {
    const auto name = key.substr(6);
    if (name.empty()) override_error(key, "expected costs.NAME");
    const auto v = parse_double(trim(text));
    if (!v) override_error(key, "expected a number; got " + quote(trim(text)));
    s.costs[name] = *v;
    return;
  }
  if (const auto* f = find_field(scenario_fields(), key)) {
    set_from_text(*f, s, key, text);
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
    }
    done = true;
  });
  if (!done) override_error(key, unknown_key_message(key, key, known_override_keys()));
}

std::string to_toml(const Scenario& s) {
  std::string out = "# Scenario " + quote(s.name) + ", written by ivmc (scenarios/FORMAT.md)\n";
  write_fields(out, scenario_fields(), s, "");
  for (const auto* sec : {"platform", "channel", "membership", "pool"}) {
    out += std::string("\n[") + sec + "]\n";
    write_fields(out, scenario_fields(), s, sec);
  }
  if (!s.costs.empty()) {
    out += "\n[costs]\n";
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

std::vector<PresetInfo> presets() {
  std::vector<PresetInfo> out;
  for (const auto& f : embedded::presets()) {
    PresetInfo info{std::string(f.name), "", ""};
    try {
      const auto doc = toml::parse(f.text, "preset:" + info.name);
      info.system = doc["preset"]["system"].value_or(std::string());
      info.summary = doc["preset"]["summary"].value_or(std::string());
    } catch (const toml::parse_error& e) {
      info.summary = "(invalid TOML: " + std::string(e.description()) + ")";
    }
    out.push_back(std::move(info));
  }
  return out;
}

std::optional<std::string> preset_text(std::string_view name) {
  for (const auto& f : embedded::presets())
    if (f.name == name) return std::string(f.text);
  return std::nullopt;
}

std::string default_scenario_text() {
  return std::string(embedded::default_scenario());
}

} // namespace ivmc::sim
