// Failure-to-channel latencies through a real ivshmem server: see ivmc/bench/liveness.hpp.
#include "ivmc/bench/liveness.hpp"

#include "ivmc/kvm/host_platform.hpp"
#include "ivmc/kvm/ivshmem_server.hpp"
#include "ivmc/kvm/ivshmem_server_thread.hpp"
#include "ivmc/posix/clock.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <thread>

namespace ivmc::bench {
namespace {

using posix::MonotonicClock;
constexpr Nanos kSecond = 1'000'000'000;
constexpr std::uint32_t kRing = 64 * 1024;
constexpr std::size_t kMaxMessage = 2048;

kvm::EndpointOptions endpoint() {
  kvm::EndpointOptions e;
  e.channel.ring_bytes = kRing;
  e.channel.notify.policy = NotifyPolicy::on_demand; // the survivor sleeps on its doorbell
  return e; // the default wait slice (50 ms) and peer timeout (2 s)
}

// Forks; the child runs `body` and _exits with its result (2 if it threw). It dies with us.
pid_t spawn(const std::function<int()>& body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int rc = 2;
    try {
      rc = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "liveness child %d: %s\n", ::getpid(), e.what());
    }
    std::fflush(nullptr);
    ::_exit(rc);
  }
  return pid;
}

void reap(pid_t pid) {
  const Nanos deadline = MonotonicClock::read() + 10 * kSecond;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (MonotonicClock::read() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Message `seq`: a length and contents derived from its number, so every one checks itself.
std::size_t fill(std::byte* p, std::uint64_t seq) {
  const std::size_t n = 8 + static_cast<std::size_t>((seq * 2654435761u) % (kMaxMessage - 8));
  std::uint64_t x = seq * 0x9E3779B97F4A7C15ull + 1;
  for (std::size_t i = 0; i < n; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::memcpy(p + i, &x, std::min<std::size_t>(8, n - i));
  }
  return n;
}

// What a forked peer reports through a pipe: one fixed-size record.
struct ChildReport {
  int error = 0;
  Nanos at = -1;
  char detail[240] = {};
};

bool read_report(int fd, ChildReport& report, Nanos timeout) {
  pollfd pfd{fd, POLLIN, 0};
  if (::poll(&pfd, 1, static_cast<int>(timeout / 1'000'000)) <= 0) return false;
  return ::read(fd, &report, sizeof report) == static_cast<ssize_t>(sizeof report);
}

} // namespace

Percentiles percentiles(std::vector<Nanos> values) {
  Percentiles p;
  if (values.empty()) return p;
  std::sort(values.begin(), values.end());
  auto at = [&](double q) {
    const auto i = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
    return static_cast<double>(values[i]) / 1e6;
  };
  p.min_ms = at(0), p.p50_ms = at(0.5), p.p90_ms = at(0.9), p.max_ms = at(1.0);
  return p;
}

std::vector<DeathWake> measure_death_wake(unsigned trials, Nanos asleep_for) {
  std::vector<DeathWake> results;
  for (unsigned t = 0; t < trials; ++t) {
    // relaxed: written by the server thread, read after the survivor's recv() returned,
    // which happens after the notice it caused (the socket hand-over orders them).
    std::atomic<Nanos> notice_at{-1};
    kvm::IvshmemServerOptions o;
    const std::string name =
        "ivmc-bench-death-" + std::to_string(::getpid()) + "-" + std::to_string(t);
    o.socket_path = "/tmp/" + name + ".sock";
    o.shm_name = name;
    o.size = kvm::HostPlatform::region_bytes_for(kRing);
    o.log = [](std::string_view) {};
    o.on_peer = [&](std::uint16_t, bool connected) {
      if (!connected) notice_at.store(MonotonicClock::read(), std::memory_order_relaxed);
    };
    kvm::IvshmemServerThread server(o);
    auto platform = kvm::HostPlatform::connect(o.socket_path, 5 * kSecond);
    auto creator = platform->create_channel(endpoint());
    const pid_t child = spawn([&]() -> int {
      auto mine = kvm::HostPlatform::connect(o.socket_path, 5 * kSecond);
      auto ep = mine->attach_channel(endpoint(), 5 * kSecond);
      for (;;) ::pause(); // alive, silent, until killed
    });
    if (creator->wait_for_peer(5 * kSecond) != Errc::ok) {
      ::kill(child, SIGKILL);
      reap(child);
      throw std::runtime_error("death-wake trial: the peer never attached");
    }
    Nanos killed_at = 0;
    std::thread killer([&] {
      std::this_thread::sleep_for(std::chrono::nanoseconds(asleep_for));
      killed_at = MonotonicClock::read();
      ::kill(child, SIGKILL);
    });
    std::byte buffer[64];
    std::size_t n = 0;
    DeathWake r;
    r.error = creator->channel().recv(buffer, n, 10 * kSecond);
    const Nanos woke = MonotonicClock::read();
    killer.join();
    reap(child);
    r.detail = creator->channel().error_detail();
    r.after_notice = woke - notice_at.load(std::memory_order_relaxed);
    r.after_kill = woke - killed_at;
    results.push_back(r);
  }
  return results;
}

ServerKill measure_server_kill(const std::string& tag) {
  ServerKill r;
  const std::string name = "ivmc-bench-srvkill-" + tag + "-" + std::to_string(::getpid());
  r.socket_path = "/tmp/" + name + ".sock";
  r.shm_name = name;
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const pid_t server = spawn([&]() -> int {
    kvm::IvshmemServerOptions o;
    o.socket_path = r.socket_path;
    o.shm_name = r.shm_name;
    o.size = kvm::HostPlatform::region_bytes_for(kRing);
    o.log = [](std::string_view) {};
    kvm::IvshmemServer s(o);
    s.start();
    const char byte = 1;
    if (::write(ready[1], &byte, 1) != 1) return 3;
    s.run(-1); // until killed
    return 0;
  });
  ::close(ready[1]);
  char byte = 0;
  pollfd pfd{ready[0], POLLIN, 0};
  const bool up = ::poll(&pfd, 1, 5000) == 1 && ::read(ready[0], &byte, 1) == 1;
  ::close(ready[0]);
  if (!up) {
    ::kill(server, SIGKILL);
    reap(server);
    throw std::runtime_error("server-kill trial: the server did not start");
  }

  auto platform = kvm::HostPlatform::connect(r.socket_path, 5 * kSecond);
  auto creator = platform->create_channel(endpoint());
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const pid_t sender = spawn([&]() -> int {
    auto mine = kvm::HostPlatform::connect(r.socket_path, 5 * kSecond);
    auto ep = mine->attach_channel(endpoint(), 5 * kSecond);
    std::byte message[kMaxMessage];
    ChildReport out;
    for (std::uint64_t seq = 0;; ++seq) {
      const std::size_t n = fill(message, seq);
      const Errc e = ep->channel().send(std::span(message, n), 10 * kSecond);
      if (e == Errc::ok) continue;
      out.at = MonotonicClock::read();
      out.error = static_cast<int>(e);
      std::snprintf(out.detail, sizeof out.detail, "%s", ep->channel().error_detail().c_str());
      break;
    }
    if (::write(report[1], &out, sizeof out) != static_cast<ssize_t>(sizeof out)) return 4;
    // Stay as a process whose server died would: alive, its endpoint still attached (an
    // exit would detach it, which the receiver would rightly read as an orderly close).
    for (;;) ::pause();
  });
  ::close(report[1]);

  std::byte got[kMaxMessage], want[kMaxMessage];
  auto receive = [&](std::uint64_t count) {
    for (std::uint64_t i = 0; i < count; ++i) {
      std::size_t n = 0;
      const Errc e = creator->channel().recv(got, n, 10 * kSecond);
      if (e != Errc::ok) return e;
      const std::size_t expect = fill(want, r.received);
      if (n != expect || std::memcmp(got, want, n) != 0) r.delivered_garbage = true;
      ++r.received;
    }
    return Errc::ok;
  };
  Nanos killed_at = 0;
  if (creator->wait_for_peer(5 * kSecond) == Errc::ok && receive(2000) == Errc::ok) {
    killed_at = MonotonicClock::read();
    ::kill(server, SIGKILL);
    r.receiver_error = receive(~std::uint64_t{0});
    r.receiver_after_kill = MonotonicClock::read() - killed_at;
    r.receiver_detail = creator->channel().error_detail();
  }
  ChildReport in;
  if (killed_at != 0 && read_report(report[0], in, 5 * kSecond)) {
    r.sender_error = static_cast<Errc>(in.error);
    r.sender_after_kill = in.at - killed_at;
    r.sender_detail = in.detail;
  }
  ::close(report[0]);
  ::kill(server, SIGKILL);
  ::kill(sender, SIGKILL);
  reap(sender);
  reap(server);
  return r;
}

} // namespace ivmc::bench
