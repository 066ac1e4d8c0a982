// Real-process test plumbing: an ivshmem server on a private socket, served by a thread of the
// test process, and forked peer processes that are always reaped (killed if they hang).
#pragma once

#include "ivmc/kvm/host_platform.hpp"
#include "ivmc/kvm/ivshmem_server_thread.hpp"

#include "process.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

namespace ivmc::test {

// A server for one test: private socket and region names (tag and pid), quiet log.
class ServerThread : public kvm::IvshmemServerThread {
public:
  ServerThread(std::size_t region_bytes, const std::string& tag)
      : IvshmemServerThread(options(region_bytes, tag)) {}

private:
  static kvm::IvshmemServerOptions options(std::size_t region_bytes, const std::string& tag) {
    kvm::IvshmemServerOptions o;
    const std::string name = "ivmc-test-" + tag + "-" + std::to_string(getpid());
    o.socket_path = "/tmp/" + name + ".sock";
    o.shm_name = name;
    o.size = region_bytes;
    o.log = [](std::string_view) {};
    return o;
  }
};

inline constexpr Nanos kSecond = 1'000'000'000;
inline constexpr std::uint32_t kTestRing = 64 * 1024;

// Endpoint options the real-process tests share: 64 KiB rings, ATW(8, 200 us) when chosen.
inline kvm::EndpointOptions test_endpoint(NotifyPolicy policy) {
  kvm::EndpointOptions e;
  e.channel.ring_bytes = kTestRing;
  e.channel.notify.policy = policy;
  e.channel.notify.atw_batch = 8;
  e.channel.notify.atw_window = 200'000;
  e.channel.liveness.peer_timeout = 2 * kSecond;
  return e;
}

// Message contents derived from a sequence number: each message checks itself.
inline void fill_message(std::byte* p, std::size_t n, std::uint64_t seq) {
  std::uint64_t x = seq * 0x9E3779B97F4A7C15ull + 1;
  for (std::size_t i = 0; i < n; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::memcpy(p + i, &x, std::min<std::size_t>(8, n - i));
  }
}
inline std::size_t message_size(std::uint64_t seq, std::size_t max) {
  return static_cast<std::size_t>((seq * 2654435761u) % (max + 1));
}

} // namespace ivmc::test
