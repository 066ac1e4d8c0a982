// One escaper for the two text formats ivmc writes: TOML basic strings (to_toml)
// and JSON strings (meta.json). For what ivmc writes their escapes coincide:
// \" \\ \n \r \t, and \uXXXX for every other control character and DEL (which TOML requires).
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace ivmc::experiment::detail {

inline std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (c < 0x20 || c == 0x7f) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
        out += buf;
      } else {
        out += ch;
      }
    }
  }
  return out + '"';
}

} // namespace ivmc::experiment::detail
