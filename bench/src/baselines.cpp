// The baselines the ring is measured against, each between the same two pinned processes.
#include "baselines.hpp"

#include "harness.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace ivmc::bench {
namespace {

void sys_check(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what + ": " + std::strerror(errno));
}

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool write_all(int fd, const void* data, std::size_t n) {
  auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_all(int fd, void* data, std::size_t n) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause(); // the ring's polling loop pauses the same way: a like-for-like probe
#endif
}

} // namespace

double memcpy_gbps(std::size_t size, double seconds) {
  // Source and destination stay cache-resident for small sizes, as a ring's hot lines do.
  auto* src = static_cast<char*>(std::aligned_alloc(64, (size + 63) / 64 * 64));
  auto* dst = static_cast<char*>(std::aligned_alloc(64, (size + 63) / 64 * 64));
  std::memset(src, 1, size);
  std::memset(dst, 2, size);
  std::uint64_t copies = 0;
  const std::uint64_t batch = std::max<std::uint64_t>(1, (1u << 20) / size);
  const double t0 = now_s();
  double t = t0;
  while (t - t0 < seconds) {
    for (std::uint64_t i = 0; i < batch; ++i) {
      std::memcpy(dst, src, size);
      asm volatile("" : : "r"(dst) : "memory"); // keep every copy
    }
    copies += batch;
    t = now_s();
  }
  std::free(src);
  std::free(dst);
  return static_cast<double>(copies) * static_cast<double>(size) / (t - t0) / 1e9;
}

LineProbe::LineProbe() {
  page_ = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  sys_check(page_ != MAP_FAILED, "mmap shared page");
  // Two lines, each written by one process: the least traffic a round trip can cause.
  new (static_cast<char*>(page_)) std::atomic<std::uint64_t>(0);
  new (static_cast<char*>(page_) + 128) std::atomic<std::uint64_t>(0);
}
LineProbe::~LineProbe() {
  munmap(page_, 4096);
}

std::vector<double> LineProbe::parent_round(int iterations) {
  auto* ping = reinterpret_cast<std::atomic<std::uint64_t>*>(page_);
  auto* pong = reinterpret_cast<std::atomic<std::uint64_t>*>(static_cast<char*>(page_) + 128);
  TscTimer timer;
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(iterations));
  for (int i = 0; i < iterations; ++i) {
    const std::uint64_t seq = ++seq_;
    const std::uint64_t t0 = TscTimer::read();
    ping->store(seq, std::memory_order_release);                      // hand the turn over
    while (pong->load(std::memory_order_acquire) != seq) cpu_relax(); // wait for the answer
    samples.push_back(timer.to_ns(TscTimer::read() - t0));
  }
  return samples;
}

void LineProbe::child_round(int iterations) {
  auto* ping = reinterpret_cast<std::atomic<std::uint64_t>*>(page_);
  auto* pong = reinterpret_cast<std::atomic<std::uint64_t>*>(static_cast<char*>(page_) + 128);
  for (int i = 0; i < iterations; ++i) {
    const std::uint64_t seq = ++seq_;
    while (ping->load(std::memory_order_acquire) != seq) cpu_relax(); // wait for the ping
    pong->store(seq, std::memory_order_release);                      // answer it
  }
}

EventfdProbe::EventfdProbe()
    : to_child_(eventfd(0, EFD_CLOEXEC)), to_parent_(eventfd(0, EFD_CLOEXEC)) {
  sys_check(to_child_ >= 0 && to_parent_ >= 0, "eventfd");
}
EventfdProbe::~EventfdProbe() {
  ::close(to_child_);
  ::close(to_parent_);
}

std::vector<double> EventfdProbe::parent_round(int iterations) {
  TscTimer timer;
  std::vector<double> samples;
  std::uint64_t v = 1;
  for (int i = 0; i < iterations; ++i) {
    const std::uint64_t t0 = TscTimer::read();
    sys_check(::write(to_child_, &v, 8) == 8, "eventfd write");
    sys_check(::read(to_parent_, &v, 8) == 8, "eventfd read");
    samples.push_back(timer.to_ns(TscTimer::read() - t0));
  }
  return samples;
}

void EventfdProbe::child_round(int iterations) {
  std::uint64_t v = 1;
  for (int i = 0; i < iterations; ++i) {
    if (::read(to_child_, &v, 8) != 8) child_fail("eventfd read");
    if (::write(to_parent_, &v, 8) != 8) child_fail("eventfd write");
  }
}

namespace {

// A connected pair of stream sockets: TCP over loopback with TCP_NODELAY, or AF_UNIX.
struct SocketPair {
  Fd parent, child;
};

SocketPair make_pair(SocketKind kind) {
  SocketPair sp;
  if (kind == SocketKind::unix_stream) {
    int fds[2];
    sys_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0, "socketpair");
    sp.parent = Fd(fds[0]);
    sp.child = Fd(fds[1]);
    return sp;
  }
  Fd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sys_check(listener.fd >= 0, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sys_check(bind(listener.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "bind");
  sys_check(listen(listener.fd, 1) == 0, "listen");
  socklen_t len = sizeof addr;
  sys_check(getsockname(listener.fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0, "getsockname");
  sp.child = Fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sys_check(connect(sp.child.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0,
            "connect 127.0.0.1");
  sp.parent = Fd(accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC));
  sys_check(sp.parent.fd >= 0, "accept");
  const int one = 1;
  for (int fd : {sp.parent.fd, sp.child.fd}) {
    sys_check(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0, "TCP_NODELAY");
  }
  return sp;
}

} // namespace

Throughput socket_throughput(SocketKind kind, const PairCpus& cpus, std::size_t size,
                             double seconds) {
  SocketPair sp = make_pair(kind);
  Throughput result;
  run_pair(
      "socket stream", cpus.parent, cpus.child,
      [&] {
        ::close(sp.child.fd);
        sp.child.fd = -1;
        // Read in large chunks: a stream application would; this is TCP at its best.
        std::vector<char> buf(std::max<std::size_t>(size, 1 << 16));
        std::uint64_t bytes = 0;
        double first = 0;
        for (;;) {
          const ssize_t r = ::read(sp.parent.fd, buf.data(), buf.size());
          if (r < 0 && errno == EINTR) continue;
          if (r < 0) throw std::runtime_error(std::string("read: ") + std::strerror(errno));
          if (r == 0) break;
          if (bytes == 0) first = now_s();
          bytes += static_cast<std::uint64_t>(r);
        }
        const double elapsed = now_s() - first;
        result.gbps = static_cast<double>(bytes) / elapsed / 1e9;
        result.msgs_per_s = static_cast<double>(bytes) / static_cast<double>(size) / elapsed;
      },
      [&] {
        ::close(sp.parent.fd);
        std::vector<char> msg(size, 'x');
        const double t0 = now_s();
        for (std::uint64_t i = 0;; ++i) {
          if (!write_all(sp.child.fd, msg.data(), size)) child_fail("socket write");
          if ((i & 63) == 0 && now_s() - t0 > seconds) break;
        }
        ::shutdown(sp.child.fd, SHUT_WR);
        return 0;
      },
      10, &result.placement);
  return result;
}

double socket_rtt_ns(SocketKind kind, const PairCpus& cpus, int iterations) {
  SocketPair sp = make_pair(kind);
  std::vector<double> samples;
  const int warmup = iterations / 10;
  run_pair(
      "socket ping-pong", cpus.parent, cpus.child,
      [&] {
        ::close(sp.child.fd);
        sp.child.fd = -1;
        TscTimer timer;
        char msg[64] = {};
        for (int i = 0; i < warmup + iterations; ++i) {
          const std::uint64_t t0 = TscTimer::read();
          sys_check(write_all(sp.parent.fd, msg, 64), "socket write");
          sys_check(read_all(sp.parent.fd, msg, 64), "socket read");
          if (i >= warmup) samples.push_back(timer.to_ns(TscTimer::read() - t0));
        }
      },
      [&] {
        ::close(sp.parent.fd);
        char msg[64];
        for (int i = 0; i < warmup + iterations; ++i) {
          if (!read_all(sp.child.fd, msg, 64)) child_fail("socket read");
          if (!write_all(sp.child.fd, msg, 64)) child_fail("socket write");
        }
        return 0;
      });
  return median(samples);
}

} // namespace ivmc::bench
