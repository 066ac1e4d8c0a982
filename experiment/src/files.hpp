// Small POSIX file helpers for the sweep's files (internal).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ivmc::experiment::detail {

// Throws std::system_error for errno, with `what`.
[[noreturn]] void throw_errno(const std::string& what);
// The whole file; throws std::runtime_error naming the path when it cannot be read.
std::string read_whole_file(const std::string& path);
// Every byte of `data` to `fd`, across short writes and EINTR; throws on an error.
void write_all(int fd, std::string_view data);
// The items with `sep` between them.
std::string join(const std::vector<std::string>& items, std::string_view sep);

} // namespace ivmc::experiment::detail
