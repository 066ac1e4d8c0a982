// ivmc-bench-liveness: how fast failures reach real host processes' channels (issue 16).
//   ivmc-bench-liveness [--trials N]
// Prints, in ms: a SIGKILLed peer's sleeping survivor (error time minus the server's notice,
// and minus the kill), two streaming peers whose server is SIGKILLed (error time minus the
// kill), and the floor both are measured against in the same run: one thread waking another
// through an eventfd, the mechanism that carries the notice to the sleeper.
#include "ivmc/bench/liveness.hpp"

#include "ivmc/posix/clock.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using ivmc::Nanos;
using ivmc::posix::MonotonicClock;

namespace {

// One thread asleep in poll() on an eventfd, woken by another's write: ring time to wake time.
std::vector<Nanos> eventfd_wake(unsigned trials) {
  std::vector<Nanos> out;
  for (unsigned t = 0; t < trials; ++t) {
    const int fd = ::eventfd(0, EFD_CLOEXEC);
    std::atomic<Nanos> rung{0}; // release/acquire: the ring time is written before the write()
    std::thread ringer([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      rung.store(MonotonicClock::read(), std::memory_order_release);
      const std::uint64_t one = 1;
      (void)!::write(fd, &one, sizeof one);
    });
    pollfd pfd{fd, POLLIN, 0};
    ::poll(&pfd, 1, 5000);
    const Nanos woke = MonotonicClock::read();
    ringer.join();
    out.push_back(woke - rung.load(std::memory_order_acquire));
    ::close(fd);
  }
  return out;
}

void row(const char* what, const std::vector<Nanos>& v) {
  const auto p = ivmc::bench::percentiles(v);
  std::printf("%-58s %4zu %8.3f %8.3f %8.3f %8.3f\n", what, v.size(), p.min_ms, p.p50_ms, p.p90_ms,
              p.max_ms);
}

} // namespace

int main(int argc, char** argv) {
  unsigned trials = 20;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--trials") == 0 && i + 1 < argc) {
      trials = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
    } else {
      std::fprintf(stderr, "usage: ivmc-bench-liveness [--trials N]\n");
      return 2;
    }
  }
  if (trials == 0) trials = 1;
  const auto floor = eventfd_wake(trials);
  const auto deaths = ivmc::bench::measure_death_wake(trials);
  std::vector<Nanos> after_notice, after_kill;
  unsigned named = 0;
  for (const auto& d : deaths) {
    after_notice.push_back(d.after_notice);
    after_kill.push_back(d.after_kill);
    if (d.error == ivmc::Errc::peer_dead) ++named;
  }
  std::vector<Nanos> receiver, sender;
  unsigned server_named = 0, garbage = 0;
  const unsigned kill_trials = std::max(1u, trials / 4);
  for (unsigned t = 0; t < kill_trials; ++t) {
    const auto k = ivmc::bench::measure_server_kill(std::to_string(t));
    receiver.push_back(k.receiver_after_kill);
    sender.push_back(k.sender_after_kill);
    if (k.receiver_detail.find("ivshmem server is gone") != std::string::npos &&
        k.sender_detail.find("ivshmem server is gone") != std::string::npos)
      ++server_named;
    if (k.delivered_garbage) ++garbage;
  }
  std::printf("%-58s %4s %8s %8s %8s %8s\n", "ms", "n", "min", "p50", "p90", "max");
  row("floor: eventfd write -> poll() wake (same run)", floor);
  row("peer SIGKILL: survivor's peer_dead - server's notice", after_notice);
  row("peer SIGKILL: survivor's peer_dead - kill()", after_kill);
  row("server SIGKILL: receiver's error - kill()", receiver);
  row("server SIGKILL: sender's error - kill()", sender);
  const auto pf = ivmc::bench::percentiles(floor), pn = ivmc::bench::percentiles(after_notice);
  std::printf("survivor wake after notice / eventfd floor (p50): %.1fx\n",
              pf.p50_ms > 0 ? pn.p50_ms / pf.p50_ms : 0.0);
  std::printf("peer_dead returned: %u of %zu; server deaths named 'ivshmem server is gone' on "
              "both peers: %u of %u; messages delivered wrong: %u\n",
              named, deaths.size(), server_named, kill_trials, garbage);
  return 0;
}
