// The library's counters and their report at exit: see stats.hpp.
#include "stats.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace ivmc::preload {

Stats& stats() {
  static Stats s;
  return s;
}

void warn(std::string_view what) {
  std::string line = "ivmc-preload: ";
  line.append(what);
  line += '\n';
  // One write(2) per line, so that lines of several processes do not interleave.
  [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
}

namespace {

// Appends this process's line to $IVMC_PRELOAD_STATS (O_APPEND: one write per process).
void write_stats() {
  const char* path = std::getenv("IVMC_PRELOAD_STATS");
  if (path == nullptr || *path == '\0') return;
  Stats& s = stats();
  auto r = [](const std::atomic<std::uint64_t>& c) {
    return static_cast<unsigned long long>(c.load(std::memory_order_relaxed)); // a snapshot
  };
  char line[320];
  const int n =
      std::snprintf(line, sizeof line,
                    "pid=%d ring_connections=%llu tcp_connections=%llu fallbacks=%llu "
                    "ring_bytes_sent=%llu ring_bytes_received=%llu\n",
                    static_cast<int>(::getpid()), r(s.ring_connections), r(s.tcp_connections),
                    r(s.fallbacks), r(s.ring_bytes_sent), r(s.ring_bytes_received));
  const int fd = ::open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;
  [[maybe_unused]] const ssize_t w = ::write(fd, line, static_cast<std::size_t>(n));
  ::close(fd);
}

// Registered at load: runs at exit() and on return from main, after the program's own
// handlers registered later.
[[gnu::constructor]] void register_stats() {
  std::atexit(write_stats);
}

} // namespace
} // namespace ivmc::preload
