// iox-roudi, iceoryx's central daemon, as a child process of the bench: started with a memory
// pool configuration sized for the bench's messages, stopped (SIGTERM: it removes its shared
// memory and socket) when the object goes, and also when the bench is interrupted
// (CleanupGuard) or killed (the kernel's parent-death signal). Internal to bench/.
#pragma once

#include "cleanup_guard.hpp"

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ivmc::bench {

struct MemPool {
  std::uint32_t chunk_bytes; // user payload, alignment and iceoryx's chunk header
  std::uint32_t count;
};

class Roudi {
public:
  // Starts iox-roudi (found on PATH) and waits until it reports "ready for clients". Returns
  // null with `why_not` set when it cannot: not installed, another RouDi already running,
  // shared memory refused, or no readiness within `timeout_s`.
  static std::unique_ptr<Roudi> start(const std::vector<MemPool>& pools, std::string& why_not,
                                      double timeout_s = 10);
  ~Roudi(); // stops it: SIGTERM, then SIGKILL if it has not exited within 5 s
  Roudi(const Roudi&) = delete;
  Roudi& operator=(const Roudi&) = delete;

  pid_t pid() const { return pid_; }

private:
  Roudi(pid_t pid, std::string config, std::string log);
  pid_t pid_;
  std::string config_path_, log_path_;
  std::unique_ptr<CleanupGuard> guard_;
};

} // namespace ivmc::bench
