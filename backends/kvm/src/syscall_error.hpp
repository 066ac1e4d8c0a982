// Private helpers to report a failed syscall with what, where and strerror.
#pragma once

#include "ivmc/kvm/error.hpp"

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace ivmc::kvm::detail {

// "what(where): strerror(err)", e.g. "bind(/tmp/ivshmem.sock): Address already in use".
inline std::string syscall_message(std::string_view what, std::string_view where, int err) {
  return fmt::format("{}({}): {}", what, where, std::strerror(err));
}

[[noreturn]] inline void throw_syscall(std::string_view context, std::string_view what,
                                       std::string_view where, int err = errno) {
  throw IvshmemError(fmt::format("{}: {}", context, syscall_message(what, where, err)));
}

} // namespace ivmc::kvm::detail
