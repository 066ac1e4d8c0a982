// format("a {} b {}", x, y): "{}" replaced by each argument in turn (operator<<). The Xen
// backend's sources go into the statically linked agent, and Debian's libfmt is shared-only.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace ivmc::xen::detail {

inline void format_to(std::ostringstream& out, std::string_view pattern) {
  out << pattern;
}

template <class First, class... Rest>
void format_to(std::ostringstream& out, std::string_view pattern, const First& first,
               const Rest&... rest) {
  const std::size_t at = pattern.find("{}");
  if (at == std::string_view::npos) {
    out << pattern;
    return;
  }
  out << pattern.substr(0, at) << first;
  format_to(out, pattern.substr(at + 2), rest...);
}

template <class... Args>
std::string format(std::string_view pattern, const Args&... args) {
  std::ostringstream out;
  format_to(out, pattern, args...);
  return out.str();
}

} // namespace ivmc::xen::detail
