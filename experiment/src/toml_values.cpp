// See toml_values.hpp.
#include "toml_values.hpp"

namespace ivmc::experiment::detail {

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

} // namespace ivmc::experiment::detail
