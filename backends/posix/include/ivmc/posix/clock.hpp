// ivmc::Clock on a real Linux host.
#pragma once

#include "ivmc/core/platform.hpp"

#include <ctime>

namespace ivmc::posix {

// CLOCK_MONOTONIC in nanoseconds: never jumps with wall-clock changes, and is read through the
// vDSO (no syscall). Its epoch is boot, so values are only comparable on the same host.
class MonotonicClock final : public ivmc::Clock {
public:
  Nanos now() override { return read(); }

  static Nanos read() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<Nanos>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  }
};

} // namespace ivmc::posix
