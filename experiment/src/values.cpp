// See values.hpp.
#include "values.hpp"

#include "quoted.hpp"
#include "toml_values.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

namespace ivmc::experiment::detail {

namespace {

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

} // namespace

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

std::string format_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string out(buf, r.ptr);
  if (out.find_first_of(".eE") == std::string::npos) out += ".0";
  return out;
}

std::string quote(std::string_view s) {
  return quoted(s);
}

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

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
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

} // namespace ivmc::experiment::detail
