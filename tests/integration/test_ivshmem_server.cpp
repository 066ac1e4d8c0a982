// The ivshmem server, peer and eventfd doorbell with real processes, sockets and shared memory.
//
// Servers run as the real `ivmc-ivshmem-server` binary (IVMC_IVSHMEM_SERVER_BIN); peers run in
// this process or in forked children. Every name includes the pid and a counter, every wait is
// bounded, and every test removes what it created.
#include "ivmc/kvm/channel_broker_client.hpp"
#include "ivmc/kvm/channel_broker_protocol.hpp"
#include "ivmc/kvm/error.hpp"
#include "ivmc/kvm/eventfd_doorbell.hpp"
#include "ivmc/kvm/host_platform.hpp"
#include "ivmc/kvm/ivshmem_peer.hpp"
#include "ivmc/kvm/ivshmem_server.hpp"
#include "ivmc/kvm/ivshmem_server_thread.hpp"
#include "ivmc/posix/clock.hpp"
#include "ivmc/posix/unique_fd.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#ifndef IVMC_IVSHMEM_SERVER_BIN
#error "IVMC_IVSHMEM_SERVER_BIN must name the ivmc-ivshmem-server binary"
#endif

using ivmc::Nanos;
using ivmc::WaitResult;
using ivmc::Wake;
using ivmc::kvm::EventfdDoorbell;
using ivmc::kvm::IvshmemError;
using ivmc::kvm::IvshmemPeer;
using ivmc::kvm::PeerEvent;
using ivmc::kvm::ServerLink;
using ivmc::kvm::WakeVectors;
using ivmc::posix::MonotonicClock;
using ivmc::posix::UniqueFd;

namespace {

constexpr Nanos kMillisecond = 1'000'000;
constexpr Nanos kSecond = 1'000'000'000;

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// A socket path and shm name nobody else uses, removed (with the lock file) when done.
struct UniqueNames {
  std::string socket;
  std::string shm; // without the leading '/'
  std::string lock;
  std::string shm_path; // under /dev/shm

  UniqueNames() {
    static int counter = 0;
    const std::string stem = fmt::format("ivmc-test-{}-{}", ::getpid(), ++counter);
    socket = fmt::format("/tmp/{}.sock", stem);
    shm = stem;
    lock = socket + ".lock";
    shm_path = "/dev/shm/" + shm;
  }
  ~UniqueNames() {
    ::unlink(socket.c_str());
    ::unlink(lock.c_str());
    ::shm_unlink(("/" + shm).c_str());
  }
  UniqueNames(const UniqueNames&) = delete;
  UniqueNames& operator=(const UniqueNames&) = delete;
};

// Waits up to `timeout` for `fd` to become readable.
bool wait_readable(int fd, Nanos timeout) {
  const Nanos deadline = MonotonicClock::read() + timeout;
  for (;;) {
    const Nanos left = deadline - MonotonicClock::read();
    pollfd pfd{fd, POLLIN, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(std::max<Nanos>(left, 0) / kMillisecond));
    if (ready > 0) return true;
    if (ready == 0 || errno != EINTR) return false;
  }
}

// A child process (forked, optionally exec'ed) that is always reaped: SIGKILLed if the test
// ends while it runs. Its stdout and stderr are captured when exec'ed.
class Child {
public:
  // Runs the binary with `args`, capturing stdout and stderr.
  static Child exec(const std::vector<std::string>& args) {
    int out[2];
    int err[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(err[1], STDERR_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    return Child(pid, UniqueFd(out[0]), UniqueFd(err[0]));
  }

  // Runs `body` in a forked copy of this process; its return value is the exit code. The child
  // never returns into Catch2 and reports its own failures on stderr.
  static Child fork(const std::function<int()>& body) {
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int code = 99;
      try {
        code = body();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child %d: exception: %s\n", ::getpid(), e.what());
      }
      std::fflush(stderr);
      ::_exit(code);
    }
    return Child(pid, UniqueFd(), UniqueFd());
  }

  Child(Child&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)), pidfd_(std::move(other.pidfd_)),
        out_(std::move(other.out_)), err_(std::move(other.err_)), stdout_(std::move(other.stdout_)),
        stderr_(std::move(other.stderr_)) {}
  Child& operator=(Child&&) = delete;
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  pid_t pid() const { return pid_; }
  void signal(int sig) const { ::kill(pid_, sig); }

  // Reads whatever stdout/stderr hold now, waiting up to `timeout` for the first byte.
  void drain(Nanos timeout) {
    std::vector<pollfd> fds;
    if (out_) fds.push_back({out_.get(), POLLIN, 0});
    if (err_) fds.push_back({err_.get(), POLLIN, 0});
    if (fds.empty()) return;
    if (::poll(fds.data(), fds.size(), static_cast<int>(timeout / kMillisecond)) <= 0) return;
    for (const auto& pfd : fds) {
      if (!(pfd.revents & (POLLIN | POLLHUP))) continue;
      char buffer[4096];
      ssize_t n = ::read(pfd.fd, buffer, sizeof buffer);
      if (n <= 0) {
        (pfd.fd == out_.get() ? out_ : err_).reset(); // EOF: the child closed it
        continue;
      }
      (pfd.fd == out_.get() ? stdout_ : stderr_).append(buffer, static_cast<std::size_t>(n));
    }
  }

  // True once stdout contains `needle`, within `timeout`.
  bool wait_for_stdout(const std::string& needle, Nanos timeout) {
    const Nanos deadline = MonotonicClock::read() + timeout;
    while (stdout_.find(needle) == std::string::npos) {
      const Nanos left = deadline - MonotonicClock::read();
      if (left <= 0 || (!out_ && !err_)) return false;
      drain(left);
    }
    drain(0); // the server logs to stderr before printing its ready line: pick that up too
    return true;
  }

  // The exit status (as waitpid reports it) if the child ends within `timeout`.
  std::optional<int> wait_exit(Nanos timeout) {
    const Nanos deadline = MonotonicClock::read() + timeout;
    for (;;) {
      int status = 0;
      pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        while (out_ || err_) drain(kSecond);
        return status;
      }
      const Nanos left = deadline - MonotonicClock::read();
      if (left <= 0) return std::nullopt;
      // The pidfd becomes readable when the child exits: a bounded wait on the condition.
      wait_readable(pidfd_.get(), left);
    }
  }

  const std::string& out() const { return stdout_; }
  const std::string& err() const { return stderr_; }

private:
  Child(pid_t pid, UniqueFd out, UniqueFd err)
      : pid_(pid), pidfd_(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))),
        out_(std::move(out)), err_(std::move(err)) {
    REQUIRE(pidfd_.valid());
  }

  pid_t pid_;
  UniqueFd pidfd_;
  UniqueFd out_;
  UniqueFd err_;
  std::string stdout_;
  std::string stderr_;
};

Child start_server(const UniqueNames& names, unsigned vectors, const std::string& size = "1M",
                   std::vector<std::string> extra = {}) {
  std::vector<std::string> args{IVMC_IVSHMEM_SERVER_BIN,
                                "--socket",
                                names.socket,
                                "--shm",
                                names.shm,
                                "--size",
                                size,
                                "--vectors",
                                std::to_string(vectors)};
  args.insert(args.end(), extra.begin(), extra.end());
  Child server = Child::exec(args);
  const bool ready = server.wait_for_stdout("listening on " + names.socket, 5 * kSecond);
  INFO("server stderr: " << server.err());
  REQUIRE(ready);
  return server;
}

bool exited_with(const std::optional<int>& status, int code) {
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == code;
}

// ---- a raw protocol client, to see exactly what the server sends ----

struct RawMessage {
  std::int64_t value = 0;
  UniqueFd fd;
};

UniqueFd raw_connect(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  return fd;
}

// One 8-byte message and its fd (at most one allowed), or nullopt if none came in `timeout`.
std::optional<RawMessage> raw_read(int socket, Nanos timeout) {
  if (!wait_readable(socket, timeout)) return std::nullopt;
  unsigned char bytes[8] = {};
  iovec iov{bytes, sizeof bytes};
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
  msghdr header{};
  header.msg_iov = &iov;
  header.msg_iovlen = 1;
  header.msg_control = control;
  header.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(socket, &header, MSG_WAITALL | MSG_CMSG_CLOEXEC);
  if (n == 0) return std::nullopt; // EOF
  REQUIRE(n == 8);
  RawMessage message;
  int fd_count = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&header); c != nullptr; c = CMSG_NXTHDR(&header, c)) {
    REQUIRE(c->cmsg_level == SOL_SOCKET);
    REQUIRE(c->cmsg_type == SCM_RIGHTS);
    const auto count = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      message.fd.reset(fd);
      ++fd_count;
    }
  }
  REQUIRE(fd_count <= 1);
  // The spec's wire format: signed 64-bit little endian, decoded byte by byte on purpose.
  std::uint64_t bits = 0;
  for (int i = 0; i < 8; ++i) bits |= std::uint64_t{bytes[i]} << (8 * i);
  message.value = static_cast<std::int64_t>(bits);
  return message;
}

std::string fd_kind(int fd) {
  char target[128] = {};
  ssize_t n = ::readlink(fmt::format("/proc/self/fd/{}", fd).c_str(), target, sizeof target - 1);
  return n > 0 ? std::string(target, static_cast<std::size_t>(n)) : std::string("?");
}

// Reads the next message and checks its value and whether it carries an fd.
UniqueFd expect_message(int socket, std::int64_t value, bool with_fd, const char* what) {
  INFO("expecting " << what << ": value " << value << (with_fd ? " with an fd" : " without fd"));
  std::optional<RawMessage> message = raw_read(socket, 2 * kSecond);
  REQUIRE(message.has_value());
  CHECK(message->value == value);
  CHECK(message->fd.valid() == with_fd);
  return std::move(message->fd);
}

std::vector<UniqueFd> expect_vectors(int socket, std::int64_t id, unsigned vectors,
                                     const char* what) {
  std::vector<UniqueFd> fds;
  for (unsigned v = 0; v < vectors; ++v) {
    UniqueFd fd = expect_message(socket, id, true, what);
    CHECK(fd_kind(fd.get()) == "anon_inode:[eventfd]");
    fds.push_back(std::move(fd));
  }
  return fds;
}

// Non-blocking read of an eventfd counter: 0 if it was not signalled.
std::uint64_t take_count(int eventfd) {
  std::uint64_t count = 0;
  int flags = ::fcntl(eventfd, F_GETFL);
  ::fcntl(eventfd, F_SETFL, flags | O_NONBLOCK);
  if (::read(eventfd, &count, sizeof count) != sizeof count) return 0;
  return count;
}

void signal_eventfd(int eventfd) {
  const std::uint64_t one = 1;
  REQUIRE(::write(eventfd, &one, sizeof one) == sizeof one);
}

// For forked children, which must not use Catch2: says why on stderr, returns the exit code.
int child_failure(int code, const std::string& why) {
  std::fprintf(stderr, "child %d: %s\n", ::getpid(), why.c_str());
  return code;
}

// A pipe for a forked child to report a number to the test.
struct ReportPipe {
  UniqueFd read_end;
  UniqueFd write_end;
  ReportPipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    read_end.reset(fds[0]);
    write_end.reset(fds[1]);
  }
  static void send(int fd, std::int64_t value) { (void)!::write(fd, &value, sizeof value); }
  std::optional<std::int64_t> receive(Nanos timeout) const {
    if (!wait_readable(read_end.get(), timeout)) return std::nullopt;
    std::int64_t value = 0;
    if (::read(read_end.get(), &value, sizeof value) != sizeof value) return std::nullopt;
    return value;
  }
};

} // namespace

TEST_CASE("ivshmem server: --size accepts bytes and K/M/G suffixes only", "[ivshmem]") {
  using ivmc::kvm::parse_byte_size;
  CHECK(parse_byte_size("4096") == 4096);
  CHECK(parse_byte_size("64K") == 65536);
  CHECK(parse_byte_size("4m") == 4u << 20);
  CHECK(parse_byte_size("1GiB") == std::size_t{1} << 30);
  CHECK_THROWS_AS(parse_byte_size(""), std::invalid_argument);
  CHECK_THROWS_AS(parse_byte_size("4X"), std::invalid_argument);
  CHECK_THROWS_AS(parse_byte_size("M"), std::invalid_argument);
  CHECK_THROWS_AS(parse_byte_size("99999999999999999999"), std::invalid_argument);
}

TEST_CASE("ivshmem server: sends the spec's exact message sequence", "[ivshmem]") {
  constexpr unsigned kVectors = 3;
  UniqueNames names;
  Child server = start_server(names, kVectors, "64K");

  // First client: version, own ID 0, -1 with the shm fd, then its own ID once per vector.
  UniqueFd a = raw_connect(names.socket);
  expect_message(a.get(), 0, false, "protocol version");
  expect_message(a.get(), 0, false, "first client's ID");
  UniqueFd shm_a = expect_message(a.get(), -1, true, "shared memory");
  struct stat shm_a_stat {};
  REQUIRE(::fstat(shm_a.get(), &shm_a_stat) == 0);
  CHECK(shm_a_stat.st_size == 65536);
  std::vector<UniqueFd> a_own = expect_vectors(a.get(), 0, kVectors, "A's interrupt setup");
  CHECK_FALSE(raw_read(a.get(), 100 * kMillisecond).has_value()); // and nothing else

  // Second client: the same, plus the existing peer 0's eventfds before its own.
  UniqueFd b = raw_connect(names.socket);
  expect_message(b.get(), 0, false, "protocol version");
  expect_message(b.get(), 1, false, "second client's ID");
  UniqueFd shm_b = expect_message(b.get(), -1, true, "shared memory");
  struct stat shm_b_stat {};
  REQUIRE(::fstat(shm_b.get(), &shm_b_stat) == 0);
  CHECK(shm_b_stat.st_ino == shm_a_stat.st_ino); // the same object
  std::vector<UniqueFd> b_sees_a = expect_vectors(b.get(), 0, kVectors, "peer 0 for B");
  std::vector<UniqueFd> b_own = expect_vectors(b.get(), 1, kVectors, "B's interrupt setup");

  // The existing client is told about the new one.
  std::vector<UniqueFd> a_sees_b = expect_vectors(a.get(), 1, kVectors, "peer 1 for A");

  // Vector order: ringing A's copy of B's vector v wakes exactly B's own vector v.
  for (unsigned v = 0; v < kVectors; ++v) {
    INFO("vector " << v);
    signal_eventfd(a_sees_b[v].get());
    for (unsigned w = 0; w < kVectors; ++w) CHECK(take_count(b_own[w].get()) == (w == v ? 1 : 0));
    signal_eventfd(b_sees_a[v].get());
    for (unsigned w = 0; w < kVectors; ++w) CHECK(take_count(a_own[w].get()) == (w == v ? 1 : 0));
  }

  // Disconnect: the others get the departed ID without an fd.
  b.reset();
  expect_message(a.get(), 1, false, "disconnect notice for peer 1");

  // IDs are not reused at once: the next client gets 2, and sees only peer 0.
  UniqueFd c = raw_connect(names.socket);
  expect_message(c.get(), 0, false, "protocol version");
  expect_message(c.get(), 2, false, "third client's ID");
  expect_message(c.get(), -1, true, "shared memory");
  expect_vectors(c.get(), 0, kVectors, "peer 0 for C");
  expect_vectors(c.get(), 2, kVectors, "C's interrupt setup");
  expect_vectors(a.get(), 2, kVectors, "peer 2 for A");
  CHECK_FALSE(raw_read(c.get(), 100 * kMillisecond).has_value());
}

TEST_CASE("ivshmem peers in two processes share memory and ping-pong through eventfd doorbells",
          "[ivshmem]") {
  constexpr unsigned kVectors = 4;
  constexpr int kRounds = 300;
  constexpr std::size_t kPatternSize = 64 * 1024;
  constexpr std::size_t kRoundSlot = 2 * kPatternSize; // A's round number
  constexpr std::size_t kEchoSlot = kRoundSlot + 64;   // B's echo of it
  UniqueNames names;
  Child server = start_server(names, kVectors);
  auto pattern = [](std::size_t i, unsigned seed) {
    return static_cast<std::byte>((i * 7 + seed) & 0xff);
  };
  auto slot = [](const IvshmemPeer& peer, std::size_t offset) {
    return std::atomic_ref<std::uint64_t>(
        *reinterpret_cast<std::uint64_t*>(peer.region().base + offset));
  };

  ReportPipe a_ready;
  Child a = Child::fork([&]() -> int {
    IvshmemPeer peer = IvshmemPeer::connect(names.socket, 5 * kSecond, kVectors);
    for (std::size_t i = 0; i < kPatternSize; ++i) peer.region().base[i] = pattern(i, 1);
    ReportPipe::send(a_ready.write_end.get(), peer.id());
    if (!peer.wait_for_events(5 * kSecond)) return child_failure(2, "A: B never joined");
    std::vector<PeerEvent> events = peer.take_events();
    if (events.size() != 1 || events[0].kind != PeerEvent::Kind::joined)
      return child_failure(3, "A: expected exactly one join event");
    EventfdDoorbell bell(peer, events[0].peer_id, {0, 1}, {0, 1});
    for (std::uint64_t round = 1; round <= kRounds; ++round) {
      // release: B's acquire load of the round number also sees everything written before.
      slot(peer, kRoundSlot).store(round, std::memory_order_release);
      bell.ring(Wake::data);
      // acquire: pairs with B's release store of the echo.
      while (slot(peer, kEchoSlot).load(std::memory_order_acquire) != round) {
        if (bell.wait(Wake::space, 2 * kSecond) != WaitResult::rung) {
          return child_failure(4, fmt::format("A: no pong for round {}", round));
        }
      }
    }
    for (std::size_t i = 0; i < kPatternSize; ++i)
      if (peer.region().base[kPatternSize + i] != pattern(i, 2))
        return child_failure(5, "A: B's pattern is not in the shared memory");
    return bell.ring_count() == kRounds ? 0 : child_failure(6, "A: ring_count is wrong");
  });
  std::optional<std::int64_t> a_id = a_ready.receive(5 * kSecond);
  REQUIRE(a_id.has_value());

  Child b = Child::fork([&]() -> int {
    IvshmemPeer peer = IvshmemPeer::connect(names.socket, 5 * kSecond, kVectors);
    const auto remote = static_cast<std::uint16_t>(*a_id);
    if (!peer.has_peer(remote)) // A was there first: announced in the handshake
      return child_failure(2, "B: A was not announced in the handshake");
    for (std::size_t i = 0; i < kPatternSize; ++i)
      if (peer.region().base[i] != pattern(i, 1))
        return child_failure(3, "B: A's pattern is not in the shared memory");
    for (std::size_t i = 0; i < kPatternSize; ++i)
      peer.region().base[kPatternSize + i] = pattern(i, 2);
    EventfdDoorbell bell(peer, remote, {0, 1}, {0, 1});
    for (std::uint64_t round = 1; round <= kRounds; ++round) {
      // acquire: pairs with A's release store of the round number.
      while (slot(peer, kRoundSlot).load(std::memory_order_acquire) != round) {
        if (bell.wait(Wake::data, 2 * kSecond) != WaitResult::rung) {
          return child_failure(4, fmt::format("B: no ping for round {}", round));
        }
      }
      // release: A's acquire load of the echo sees the pattern written above.
      slot(peer, kEchoSlot).store(round, std::memory_order_release);
      bell.ring(Wake::space);
    }
    return bell.ring_count() == kRounds ? 0 : child_failure(5, "B: ring_count is wrong");
  });

  std::optional<int> b_status = b.wait_exit(10 * kSecond);
  std::optional<int> a_status = a.wait_exit(10 * kSecond);
  CHECK(exited_with(b_status, 0));
  CHECK(exited_with(a_status, 0));
}

TEST_CASE("ivshmem eventfd doorbell: sticky rings, reset on wait or on clear, independent reasons, "
          "timeouts",
          "[ivshmem]") {
  constexpr unsigned kVectors = 4;
  UniqueNames names;
  Child server = start_server(names, kVectors);
  IvshmemPeer a = IvshmemPeer::connect(names.socket, 5 * kSecond, kVectors);
  IvshmemPeer b = IvshmemPeer::connect(names.socket, 5 * kSecond, kVectors);
  REQUIRE(a.wait_for_peer(b.id(), 5 * kSecond));
  // a rings b's vectors 2/3 and waits on its own 0/1; b the other way round.
  EventfdDoorbell a_bell(a, b.id(), {2, 3}, {0, 1});
  EventfdDoorbell b_bell(b, a.id(), {0, 1}, {2, 3});

  // Sticky: rings before the wait are kept, and several collapse into one wake-up.
  a_bell.ring(Wake::data);
  a_bell.ring(Wake::data);
  CHECK(b_bell.wait(Wake::data, 0) == WaitResult::rung);
  // The wait consumed the counter: nothing is pending any more.
  CHECK(b_bell.wait(Wake::data, 0) == WaitResult::timed_out);
  // A reason's ring never wakes the other reason's waiter.
  a_bell.ring(Wake::space);
  CHECK(b_bell.wait(Wake::data, 0) == WaitResult::timed_out);
  CHECK(b_bell.wait(Wake::space, 0) == WaitResult::rung);
  // The other direction uses other vectors.
  b_bell.ring(Wake::data);
  CHECK(a_bell.wait(Wake::space, 0) == WaitResult::timed_out);
  CHECK(a_bell.wait(Wake::data, 0) == WaitResult::rung);

  // The channel's two-step sleep: wait_uncleared() leaves the ring that ended it pending (the
  // next wait returns at once), clear() forgets it, and a ring after clear() is sticky again.
  a_bell.ring(Wake::data);
  CHECK(b_bell.wait_uncleared(Wake::data, kSecond) == WaitResult::rung);
  CHECK(b_bell.wait_uncleared(Wake::data, 0) == WaitResult::rung);
  b_bell.clear(Wake::data);
  CHECK(b_bell.wait_uncleared(Wake::data, 0) == WaitResult::timed_out);
  b_bell.clear(Wake::data); // nothing left to forget: no read, no error
  a_bell.ring(Wake::data);
  b_bell.clear(Wake::space); // the other reason's clear leaves this ring alone
  CHECK(b_bell.wait_uncleared(Wake::data, 0) == WaitResult::rung);
  b_bell.clear(Wake::data);
  a_bell.ring(Wake::data); // after the clear: kept
  CHECK(b_bell.wait(Wake::data, 0) == WaitResult::rung);
  CHECK(b_bell.wait(Wake::data, 0) == WaitResult::timed_out);
  CHECK(b_bell.last_errno() == 0);

  // A timed wait sleeps for (at least) its timeout, but not much longer.
  const Nanos before = MonotonicClock::read();
  CHECK(a_bell.wait(Wake::data, 50 * kMillisecond) == WaitResult::timed_out);
  const Nanos slept = MonotonicClock::read() - before;
  CHECK(slept >= 50 * kMillisecond);
  CHECK(slept < 2 * kSecond);
  // A negative timeout (a deadline already passed) only checks.
  CHECK(a_bell.wait(Wake::data, -kSecond) == WaitResult::timed_out);

  CHECK(a_bell.ring_count() == 6);
  CHECK(b_bell.ring_count() == 1);
  CHECK(b_bell.wakeup_count() == 6);
  CHECK(a_bell.wakeup_count() == 1);

  // Misconfigurations are refused at construction.
  CHECK_THROWS_WITH(EventfdDoorbell(a, b.id(), {1, 1}, {0, 1}),
                    Catch::Contains("different vectors"));
  CHECK_THROWS_WITH(EventfdDoorbell(a, 4321, {0, 1}, {0, 1}),
                    Catch::Contains("peer 4321 is not connected"));
  CHECK_THROWS_WITH(EventfdDoorbell(a, b.id(), {0, kVectors}, {0, 1}),
                    Catch::Contains("is not available"));
}

TEST_CASE("ivshmem peer: a SIGKILLed peer is reported gone within a bounded time", "[ivshmem]") {
  constexpr unsigned kVectors = 2;
  UniqueNames names;
  Child server = start_server(names, kVectors);
  IvshmemPeer watcher = IvshmemPeer::connect(names.socket, 5 * kSecond, kVectors);

  ReportPipe report;
  ReportPipe hold; // the victim blocks on it until killed
  Child victim = Child::fork([&]() -> int {
    IvshmemPeer peer = IvshmemPeer::connect(names.socket, 5 * kSecond, kVectors);
    ReportPipe::send(report.write_end.get(), peer.id());
    char byte;
    (void)!::read(hold.read_end.get(), &byte, 1);
    return 0;
  });
  std::optional<std::int64_t> victim_id = report.receive(5 * kSecond);
  REQUIRE(victim_id.has_value());
  const auto id = static_cast<std::uint16_t>(*victim_id);
  REQUIRE(watcher.wait_for_peer(id, 5 * kSecond));
  CHECK(watcher.take_events() == std::vector<PeerEvent>{{PeerEvent::Kind::joined, id}});
  EventfdDoorbell bell(watcher, id, {0, 1}, {0, 1});

  victim.signal(SIGKILL);
  REQUIRE(victim.wait_exit(5 * kSecond).has_value());
  const Nanos killed = MonotonicClock::read();
  REQUIRE(watcher.wait_for_peer_gone(id, 2 * kSecond));
  CHECK(MonotonicClock::read() - killed < 2 * kSecond);
  CHECK(watcher.take_events() == std::vector<PeerEvent>{{PeerEvent::Kind::left, id}});
  CHECK_FALSE(watcher.has_peer(id));
  CHECK(watcher.peer_vector_fd(id, 0) == -1);
  CHECK(watcher.server_link() == ServerLink::connected);

  // The doorbell's fds were dup()ed: ringing a departed peer is harmless, and declaring it lost
  // fails the waits.
  bell.ring(Wake::data);
  CHECK(bell.ring_count() == 1);
  CHECK(bell.last_errno() == 0);
  bell.declare_lost();
  CHECK(bell.wait(Wake::data, kSecond) == WaitResult::failed);
}

TEST_CASE("ivshmem server: a restart cleans what a SIGKILLed server left, fresh region",
          "[ivshmem]") {
  constexpr unsigned kVectors = 2;
  constexpr std::size_t kProbe = 100;
  UniqueNames names;
  Child first = start_server(names, kVectors);
  IvshmemPeer old_peer = IvshmemPeer::connect(names.socket, 5 * kSecond, kVectors);
  old_peer.region().base[kProbe] = std::byte{0xab};

  const pid_t dead_pid = first.pid();
  first.signal(SIGKILL);
  REQUIRE(first.wait_exit(5 * kSecond).has_value());
  CHECK(path_exists(names.socket)); // the dead server could not clean up
  CHECK(path_exists(names.shm_path));
  CHECK_FALSE(old_peer.wait_for_events(2 * kSecond));
  CHECK(old_peer.server_link() == ServerLink::closed);

  Child second = start_server(names, kVectors);
  INFO("restarted server stderr: " << second.err());
  CHECK(second.err().find(fmt::format("dead server (pid {})", dead_pid)) != std::string::npos);
  CHECK(second.err().find(names.socket) != std::string::npos);
  CHECK(second.err().find(fmt::format("/{} (1048576 bytes)", names.shm)) != std::string::npos);

  IvshmemPeer new_peer = IvshmemPeer::connect(names.socket, 5 * kSecond, kVectors);
  CHECK(new_peer.id() == 0);
  REQUIRE(new_peer.region().size == 1048576);
  CHECK(new_peer.region().base[kProbe] == std::byte{0});
  // The old client keeps the old region (the spec lets clients carry on without a server).
  CHECK(old_peer.region().base[kProbe] == std::byte{0xab});
}

TEST_CASE("ivshmem server: a second server on a live server's socket refuses clearly",
          "[ivshmem]") {
  constexpr unsigned kVectors = 2;
  UniqueNames names;
  Child first = start_server(names, kVectors);

  UniqueNames other_shm;
  Child second =
      Child::exec({IVMC_IVSHMEM_SERVER_BIN, "--socket", names.socket, "--shm", other_shm.shm});
  std::optional<int> status = second.wait_exit(5 * kSecond);
  INFO("second server stderr: " << second.err());
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) != 0);
  CHECK(second.err().find(names.socket) != std::string::npos);
  CHECK(second.err().find(fmt::format("running ivshmem server (pid {}", first.pid())) !=
        std::string::npos);
  CHECK_FALSE(path_exists(other_shm.shm_path)); // it created nothing

  // Nor may a server on another socket take over the live server's shm object.
  UniqueNames other_socket;
  Child third = Child::exec({IVMC_IVSHMEM_SERVER_BIN, "--socket", other_socket.socket, "--shm",
                             names.shm, "--size", "1M"});
  std::optional<int> third_status = third.wait_exit(5 * kSecond);
  INFO("third server stderr: " << third.err());
  REQUIRE(third_status.has_value());
  CHECK(WIFEXITED(*third_status));
  CHECK(WEXITSTATUS(*third_status) != 0);
  CHECK(third.err().find(fmt::format("shm /{} is in use by a running ivshmem server", names.shm)) !=
        std::string::npos);
  CHECK_FALSE(path_exists(other_socket.socket));

  // The first server is untouched and still serves.
  CHECK(path_exists(names.socket));
  CHECK(path_exists(names.shm_path));
  IvshmemPeer peer = IvshmemPeer::connect(names.socket, 5 * kSecond, kVectors);
  CHECK(peer.id() == 0);
}

TEST_CASE("ivshmem server: SIGTERM removes socket, shm and lock file", "[ivshmem]") {
  constexpr unsigned kVectors = 2;
  UniqueNames names;
  Child server = start_server(names, kVectors, "1M", {"--verbose"});
  IvshmemPeer peer = IvshmemPeer::connect(names.socket, 5 * kSecond, kVectors);
  REQUIRE(path_exists(names.lock));
  REQUIRE(path_exists(names.shm_path));

  server.signal(SIGTERM);
  std::optional<int> status = server.wait_exit(5 * kSecond);
  INFO("server stderr: " << server.err());
  CHECK(exited_with(status, 0));
  CHECK_FALSE(path_exists(names.socket));
  CHECK_FALSE(path_exists(names.lock));
  CHECK_FALSE(path_exists(names.shm_path));
  CHECK_FALSE(peer.wait_for_events(2 * kSecond));
  CHECK(peer.server_link() == ServerLink::closed);
}

TEST_CASE("ivshmem server: survives clients that vanish, write or never read, bounds peers",
          "[ivshmem]") {
  constexpr unsigned kVectors = 8;
  UniqueNames names;
  Child server = start_server(names, kVectors, "1M", {"--max-peers", "3"});

  // Connect-and-vanish at every point of the handshake, and a client that writes.
  for (int i = 0; i < 50; ++i) {
    UniqueFd fd = raw_connect(names.socket);
    for (int m = 0; m < i % 6; ++m) raw_read(fd.get(), kSecond);
    if (i % 7 == 0) (void)!::write(fd.get(), "x", 1);
  }
  // A client that never reads stays connected (its messages wait in its socket).
  UniqueFd silent = raw_connect(names.socket);

  IvshmemPeer a = IvshmemPeer::connect(names.socket, 5 * kSecond, kVectors);
  REQUIRE(a.peer_ids().size() == 1); // the silent client, announced in a's handshake
  const std::uint16_t silent_id = a.peer_ids().front();
  IvshmemPeer b = IvshmemPeer::connect(names.socket, 5 * kSecond, kVectors);
  CHECK(a.wait_for_peer(b.id(), 5 * kSecond));
  CHECK(b.peer_ids().size() == 2); // a and the silent client

  // The fourth peer exceeds --max-peers 3: refused, and told so by a closed connection.
  CHECK_THROWS_WITH(IvshmemPeer::connect(names.socket, 2 * kSecond, kVectors),
                    Catch::Contains("closed the connection during the handshake after 0"));

  silent.reset();
  CHECK(a.wait_for_peer_gone(silent_id, 5 * kSecond));
  IvshmemPeer c = IvshmemPeer::connect(names.socket, 5 * kSecond, kVectors);
  CHECK(b.wait_for_peer(c.id(), 5 * kSecond));
  CHECK_FALSE(server.wait_exit(0).has_value()); // still running
}

TEST_CASE("ivshmem peer: a vector count different from the server's fails clearly", "[ivshmem]") {
  UniqueNames names;
  Child server = start_server(names, 4);

  // The server has more vectors: the extra own eventfds are refused, at connect or right after
  // (connect checks what already arrived; the rest may still be in flight).
  std::string error;
  try {
    IvshmemPeer peer = IvshmemPeer::connect(names.socket, 2 * kSecond, 2);
    CHECK_FALSE(peer.wait_for_events(2 * kSecond));
    CHECK(peer.server_link() == ServerLink::failed);
    error = peer.server_error();
  } catch (const IvshmemError& e) {
    error = e.what();
  }
  INFO("error: " << error);
  CHECK(error.find("beyond the 2 vectors of this client: does the server use more?") !=
        std::string::npos);

  // The server has fewer: the handshake never completes, and says what it waited for. (A
  // fresh server: on the first one, the peer above may not be gone yet, which would make the
  // error "peer 0 was announced with 4 eventfds, expected 8" instead.)
  UniqueNames fresh;
  Child fresh_server = start_server(fresh, 4);
  CHECK_THROWS_WITH(IvshmemPeer::connect(fresh.socket, 300 * kMillisecond, 8),
                    Catch::Contains("has 4 of 8 (does the server use --vectors 8?)"));
}

namespace {

// What a fake (hostile or broken) server sends, message by message.
enum class Attach { none, eventfd, shm, pipe, two_eventfds };
struct FakeMessage {
  std::int64_t value;
  Attach attach = Attach::none;
};
struct FakeScript {
  const char* name;
  std::vector<FakeMessage> messages;
  bool half_message_then_stall = false; // after the messages, 4 bytes of a fifth
  bool close_after = false;             // close instead of stalling until the client leaves
  const char* expected_error;
};

void fake_send(int socket, std::int64_t value, Attach attach, std::size_t bytes = 8) {
  std::vector<int> fds;
  int pipe_fds[2] = {-1, -1};
  switch (attach) {
  case Attach::none:
    break;
  case Attach::eventfd:
    fds.push_back(::eventfd(0, EFD_CLOEXEC));
    break;
  case Attach::two_eventfds:
    fds.push_back(::eventfd(0, EFD_CLOEXEC));
    fds.push_back(::eventfd(0, EFD_CLOEXEC));
    break;
  case Attach::shm: {
    int fd = ::memfd_create("fake-ivshmem", MFD_CLOEXEC);
    (void)!::ftruncate(fd, 4096);
    fds.push_back(fd);
    break;
  }
  case Attach::pipe:
    (void)!::pipe2(pipe_fds, O_CLOEXEC);
    fds.push_back(pipe_fds[0]);
    break;
  }
  std::uint64_t wire = static_cast<std::uint64_t>(value); // x86: already little endian
  iovec iov{&wire, bytes};
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
  msghdr header{};
  header.msg_iov = &iov;
  header.msg_iovlen = 1;
  if (!fds.empty()) {
    header.msg_control = control;
    header.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&header);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  }
  (void)!::sendmsg(socket, &header, MSG_NOSIGNAL);
  for (int fd : fds) ::close(fd);
  if (pipe_fds[1] >= 0) ::close(pipe_fds[1]);
}

} // namespace

TEST_CASE("ivshmem peer: connect rejects a hostile or broken server clearly, in bounded time",
          "[ivshmem]") {
  constexpr unsigned kVectors = 2;
  constexpr Nanos kConnectTimeout = 500 * kMillisecond;
  const std::vector<FakeScript> scripts = {
      {"wrong version", {{1}}, false, false, "the server speaks version 1"},
      {"version with an fd",
       {{0, Attach::eventfd}},
       false,
       false,
       "message 1 (protocol version) came with a file descriptor"},
      {"ID out of range", {{0}, {70000}}, false, false, "70000 is not a peer ID"},
      {"ID with an fd",
       {{0}, {0, Attach::eventfd}},
       false,
       false,
       "message 2 (peer ID) came with a file descriptor"},
      {"no shared memory fd",
       {{0}, {0}, {-1}},
       false,
       false,
       "message 3 (shared memory, -1) came without a file descriptor"},
      {"two fds in one message",
       {{0}, {0}, {-1, Attach::shm}, {1, Attach::two_eventfds}},
       false,
       false,
       "message 4 came with 2 file descriptors"},
      {"a pipe instead of an eventfd",
       {{0}, {0}, {-1, Attach::shm}, {0, Attach::pipe}},
       false,
       false,
       "is not an eventfd (it is pipe:"},
      {"too few eventfds for a peer",
       {{0}, {1}, {-1, Attach::shm}, {0, Attach::eventfd}, {1, Attach::eventfd}},
       false,
       false,
       "peer 0 was announced with 1 eventfds, expected 2"},
      {"disconnect notice during the handshake",
       {{0}, {1}, {-1, Attach::shm}, {0}},
       false,
       false,
       "peer ID 0 without a file descriptor during the handshake"},
      {"closes during the handshake",
       {{0}, {0}},
       false,
       true,
       "closed the connection during the handshake after 2 messages"},
      {"stalls with too few own eventfds",
       {{0}, {0}, {-1, Attach::shm}, {0, Attach::eventfd}},
       false,
       false,
       "handshake timed out"},
      {"stalls in the middle of a message", {{0}}, true, false, "handshake timed out"},
  };

  for (const FakeScript& script : scripts) {
    INFO("fake server: " << script.name);
    UniqueNames names;
    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(listener.valid());
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, names.socket.c_str(), sizeof address.sun_path - 1);
    REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(listener.get(), 1) == 0);

    Child fake = Child::fork([&]() -> int {
      if (!wait_readable(listener.get(), 5 * kSecond))
        return child_failure(2, "fake server: nobody connected");
      UniqueFd client(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!client) return child_failure(3, "fake server: accept4 failed");
      for (const FakeMessage& m : script.messages) fake_send(client.get(), m.value, m.attach);
      if (script.half_message_then_stall) fake_send(client.get(), 5, Attach::none, 4);
      if (script.close_after) return 0;
      wait_readable(client.get(), 5 * kSecond); // until the client gives up and closes
      return 0;
    });

    const Nanos started = MonotonicClock::read();
    std::string error;
    try {
      IvshmemPeer::connect(names.socket, kConnectTimeout, kVectors);
    } catch (const IvshmemError& e) {
      error = e.what();
    }
    const Nanos elapsed = MonotonicClock::read() - started;
    INFO("error: " << error);
    CHECK(error.find(script.expected_error) != std::string::npos);
    CHECK(error.find(names.socket) != std::string::npos); // names where
    CHECK(elapsed < kConnectTimeout + kSecond);
    CHECK(exited_with(fake.wait_exit(5 * kSecond), 0));
  }
}

TEST_CASE("ivshmem server: reuse_id_zero gives ID 0 again once it is free (master=on guests)",
          "[ivshmem]") {
  for (const bool reuse : {false, true}) {
    ivmc::kvm::IvshmemServerOptions o;
    const std::string name = "ivmc-test-id0-" + std::to_string(::getpid());
    o.socket_path = "/tmp/" + name + ".sock";
    o.shm_name = name;
    o.size = 64 * 1024;
    o.vectors = 2;
    o.reuse_id_zero = reuse;
    o.log = [](std::string_view) {};
    ivmc::kvm::IvshmemServerThread server(o);
    std::optional<IvshmemPeer> first(IvshmemPeer::connect(o.socket_path, 5 * kSecond, 2));
    IvshmemPeer resident = IvshmemPeer::connect(o.socket_path, 5 * kSecond, 2);
    REQUIRE(first->id() == 0);
    REQUIRE(resident.id() == 1);
    first.reset(); // the guest left this host
    REQUIRE(resident.wait_for_peer_gone(0, 5 * kSecond));
    IvshmemPeer returning = IvshmemPeer::connect(o.socket_path, 5 * kSecond, 2);
    INFO("reuse_id_zero " << reuse);
    CHECK(returning.id() == (reuse ? 0 : 2)); // round-robin otherwise
  }
}

TEST_CASE("ivshmem server: --channel-socket with --enrol and --trust hands sealed regions to "
          "admitted pairs only",
          "[ivshmem]") {
  constexpr unsigned kVectors = 2;
  UniqueNames names;
  const auto a = ivmc::kvm::random_token(), b = ivmc::kvm::random_token(),
             c = ivmc::kvm::random_token();
  const std::string uid = std::to_string(::getuid());
  Child server =
      start_server(names, kVectors, "1M",
                   {"--channel-socket", "--enrol", "1:" + uid + ":" + ivmc::kvm::token_hex(a),
                    "--enrol", "2:" + uid + ":" + ivmc::kvm::token_hex(b), "--enrol",
                    "3:" + uid + ":" + ivmc::kvm::token_hex(c), "--trust", "1:2"});
  auto pa = ivmc::kvm::HostPlatform::connect(names.socket, 5 * kSecond, kVectors, a);
  auto pc = ivmc::kvm::HostPlatform::connect(names.socket, 5 * kSecond, kVectors, c);
  CHECK(pa->enrolled_vm() == 1u);
  CHECK(pc->enrolled_vm() == 3u);
  auto region = pa->open_region(2, 9, 65536, 5 * kSecond);
  CHECK(region->region().size == 65536);
  CHECK_THROWS_AS(pc->open_region(1, 9, 65536, 5 * kSecond), ivmc::kvm::ChannelRefused);
  pa.reset();
  pc.reset();
  server.signal(SIGTERM);
  CHECK(exited_with(server.wait_exit(5 * kSecond), 0));
  CHECK_FALSE(path_exists(names.socket + ".ivmc")); // removed on an orderly stop
}

// ---- exec mode (`ivmc exec`): a listener that registers between a client's connect and its
// kernel connect (issue 17) ----

namespace {

namespace broker = ivmc::kvm::broker;

// One enrolled exec-mode VM speaking the channel socket's protocol directly.
struct ExecVm {
  UniqueFd socket;

  ExecVm(const std::string& host, std::uint64_t group) {
    socket = UniqueFd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    REQUIRE(socket.valid());
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, (host + ".ivmc").c_str(), sizeof address.sun_path - 1);
    REQUIRE(::connect(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    const auto token = ivmc::kvm::random_token();
    broker::Request join;
    join.op = broker::Op::join;
    join.key = group;
    std::memcpy(join.token, token.data(), token.size());
    REQUIRE(ask(join).first.op == broker::Op::welcome);
  }

  // One request; its reply and the region's fd, if one came.
  std::pair<broker::Reply, UniqueFd> ask(const broker::Request& request) {
    REQUIRE(::send(socket.get(), &request, sizeof request, MSG_NOSIGNAL) ==
            static_cast<ssize_t>(sizeof request));
    REQUIRE(wait_readable(socket.get(), 5 * kSecond));
    broker::Reply reply;
    iovec iov{&reply, sizeof reply};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr header{};
    header.msg_iov = &iov;
    header.msg_iovlen = 1;
    header.msg_control = control;
    header.msg_controllen = sizeof control;
    REQUIRE(::recvmsg(socket.get(), &header, MSG_CMSG_CLOEXEC) ==
            static_cast<ssize_t>(sizeof reply));
    UniqueFd fd;
    if (cmsghdr* m = CMSG_FIRSTHDR(&header); m != nullptr && m->cmsg_type == SCM_RIGHTS) {
      int f = -1;
      std::memcpy(&f, CMSG_DATA(m), sizeof f);
      fd = UniqueFd(f);
    }
    return {reply, std::move(fd)};
  }

  std::pair<broker::Reply, UniqueFd> ask(broker::Op op, std::uint64_t key,
                                         std::uint64_t bytes = 0) {
    broker::Request request;
    request.op = op;
    request.key = key;
    request.bytes = bytes;
    return ask(request);
  }
};

ino_t inode_of(const UniqueFd& fd) {
  struct stat st {};
  REQUIRE(::fstat(fd.get(), &st) == 0);
  return st.st_ino;
}

} // namespace

TEST_CASE("ivshmem server exec mode: a listener that registers after the client's connect gets "
          "the ring in either order, or both ends agree on kernel TCP",
          "[ivshmem]") {
  UniqueNames names;
  Child server = start_server(names, 1, "64K", {"--channel-socket", "--exec-enrolment"});
  ExecVm client(names.socket, 1), listener(names.socket, 1), stranger(names.socket, 2);
  constexpr std::uint16_t kClientPort = 50001;
  std::uint16_t server_port = 40000;
  auto ports = [&] { return (std::uint64_t{kClientPort} << 16) | server_port; };
  // The client asks before anybody listens: a tentative region, no refusal.
  auto connect = [&] {
    auto [reply, fd] = client.ask(broker::Op::connect, ports(), 65536);
    REQUIRE(reply.op == broker::Op::region);
    CHECK(reply.vm == broker::kNoListener);
    REQUIRE(fd.valid());
    return std::move(fd);
  };

  SECTION("the client confirms before the listener accepts: a ring") {
    UniqueFd mine = connect();
    CHECK(listener.ask(broker::Op::listen, server_port).first.op == broker::Op::ok);
    CHECK(client.ask(broker::Op::confirm, ports()).first.op == broker::Op::ok);
    auto [reply, theirs] = listener.ask(broker::Op::accept, ports());
    REQUIRE(reply.op == broker::Op::region);
    REQUIRE(theirs.valid());
    CHECK(inode_of(theirs) == inode_of(mine)); // one region for both ends
  }
  SECTION("the listener accepts before the client confirms: a ring") {
    UniqueFd mine = connect();
    CHECK(listener.ask(broker::Op::listen, server_port).first.op == broker::Op::ok);
    auto [reply, theirs] = listener.ask(broker::Op::accept, ports());
    REQUIRE(reply.op == broker::Op::region);
    REQUIRE(theirs.valid());
    CHECK(inode_of(theirs) == inode_of(mine));
    CHECK(client.ask(broker::Op::confirm, ports()).first.op == broker::Op::ok);
    // The record ended with the confirm: nothing more to accept or confirm.
    CHECK(listener.ask(broker::Op::accept, ports()).first.op == broker::Op::refused);
    CHECK(client.ask(broker::Op::confirm, ports()).first.op == broker::Op::refused);
  }
  SECTION("nobody enrolled listens (a plain TCP listener): kernel TCP for both") {
    UniqueFd mine = connect();
    CHECK(client.ask(broker::Op::confirm, ports()).first.op == broker::Op::refused);
    CHECK(listener.ask(broker::Op::listen, server_port).first.op == broker::Op::ok);
    CHECK(listener.ask(broker::Op::accept, ports()).first.op == broker::Op::refused);
  }
  SECTION("a listener of another group, before or after the confirm: kernel TCP for both") {
    server_port = 40001;
    UniqueFd first = connect();
    CHECK(stranger.ask(broker::Op::listen, server_port).first.op == broker::Op::ok);
    CHECK(stranger.ask(broker::Op::accept, ports()).first.op == broker::Op::refused);
    CHECK(client.ask(broker::Op::confirm, ports()).first.op == broker::Op::refused);
    server_port = 40002;
    UniqueFd second = connect();
    CHECK(stranger.ask(broker::Op::listen, server_port).first.op == broker::Op::ok);
    CHECK(client.ask(broker::Op::confirm, ports()).first.op == broker::Op::refused);
    CHECK(stranger.ask(broker::Op::accept, ports()).first.op == broker::Op::refused);
  }
  SECTION("only the port's registered listener may take a tentative connection") {
    UniqueFd mine = connect();
    CHECK(listener.ask(broker::Op::listen, server_port).first.op == broker::Op::ok);
    CHECK(stranger.ask(broker::Op::accept, ports()).first.op == broker::Op::refused);
    CHECK(client.ask(broker::Op::confirm, ports()).first.op == broker::Op::ok);
    CHECK(listener.ask(broker::Op::accept, ports()).first.op == broker::Op::region);
  }
  SECTION("the kernel connect failed: the client cancels, the listener finds nothing") {
    UniqueFd mine = connect();
    CHECK(client.ask(broker::Op::cancel, ports()).first.op == broker::Op::ok);
    CHECK(listener.ask(broker::Op::listen, server_port).first.op == broker::Op::ok);
    CHECK(listener.ask(broker::Op::accept, ports()).first.op == broker::Op::refused);
    CHECK(client.ask(broker::Op::confirm, ports()).first.op == broker::Op::refused);
  }
  server.signal(SIGTERM);
  CHECK(exited_with(server.wait_exit(5 * kSecond), 0));
}
