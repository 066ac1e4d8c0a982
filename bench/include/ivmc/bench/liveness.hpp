// How fast a failure reaches the channels of real host processes through a real ivshmem server:
// a SIGKILLed peer's survivor, asleep in recv(), and two streaming peers whose server is
// SIGKILLed. Shared by `ivmc-bench-liveness` (the figures in BENCHMARKS.md) and the
// integration tests (loose bounds only).
#pragma once

#include "ivmc/core/errc.hpp"
#include "ivmc/core/platform.hpp"

#include <string>
#include <vector>

namespace ivmc::bench {

// One SIGKILLed peer: the survivor (a creator asleep in recv() under on_demand, its wait slice
// the default 50 ms) against the server's own notice (its on_peer callback).
struct DeathWake {
  Errc error = Errc::ok;  // what the survivor's recv() returned
  std::string detail;     // its error_detail()
  Nanos after_notice = 0; // survivor's error time minus the server's notice time
  Nanos after_kill = 0;   // survivor's error time minus the kill() call
};
// `trials` independent trials, each with a fresh server (a thread of this process) and a
// forked peer. `asleep_for`: how long the survivor sleeps before the peer is killed.
std::vector<DeathWake> measure_death_wake(unsigned trials, Nanos asleep_for = 100'000'000);

// Two streaming peers (this process receives, a forked child sends) whose server, a forked
// process, is SIGKILLed mid-stream.
struct ServerKill {
  Errc receiver_error = Errc::ok, sender_error = Errc::ok;
  std::string receiver_detail, sender_detail;
  Nanos receiver_after_kill = -1, sender_after_kill = -1; // -1: no error within 5 s
  std::uint64_t received = 0; // messages received, every one checked, before the error
  bool delivered_garbage = false;
  std::string socket_path, shm_name; // where the dead server left its socket and region
};
ServerKill measure_server_kill(const std::string& tag);

struct Percentiles {
  double p50_ms = 0, p90_ms = 0, max_ms = 0, min_ms = 0;
};
Percentiles percentiles(std::vector<Nanos> values);

} // namespace ivmc::bench
