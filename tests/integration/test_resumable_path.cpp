// The resumable remote path over real TCP loopback connections that are cut or go silent
// mid-stream, as a live-migrated guest's user-networking connections do. The connections run
// through a proxy thread that can drop them with data in flight (it throws away what it holds)
// or stop forwarding without closing (a black hole); every frame must still arrive once, in
// order.
#include "ivmc/posix/clock.hpp"
#include "ivmc/posix/resumable_path.hpp"
#include "ivmc/posix/tcp_path.hpp"

#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

using namespace ivmc;
using namespace ivmc::posix;

namespace {

constexpr Nanos kSecond = 1'000'000'000;

// Forwards raw bytes between each accepted client connection and a new connection to
// 127.0.0.1:`target`, one pair at a time. cut() closes the pair at once, dropping whatever the
// proxy read but did not write yet; silence() keeps the pair open but forwards nothing more.
class Proxy {
public:
  explicit Proxy(std::uint16_t target) : target_(target) {
    listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(listen_, 4) == 0);
    REQUIRE(::getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~Proxy() {
    stop_.store(true); // seq_cst: a flag read by the loop
    thread_.join();
    ::close(listen_);
  }
  std::uint16_t port() const { return port_; }
  void cut() { cut_.store(true); }        // seq_cst: a request flag
  void silence() { silent_.store(true); } // seq_cst: a request flag
  int pairs() const { return pairs_.load(); }

private:
  void close_pair(int& a, int& b) {
    if (a >= 0) ::close(a);
    if (b >= 0) ::close(b);
    a = b = -1;
  }
  void run() {
    int client = -1, server = -1;
    std::vector<char> buf(1 << 16);
    while (!stop_.load()) {
      if (cut_.exchange(false) || (silent_.load() && client < 0)) {
        close_pair(client, server);
        silent_.store(false);
      }
      pollfd p[3] = {{listen_, POLLIN, 0}, {client, POLLIN, 0}, {server, POLLIN, 0}};
      const bool forwarding = client >= 0 && !silent_.load();
      if (::poll(p, forwarding ? 3 : 1, 10) <= 0) continue;
      if (p[0].revents & POLLIN) { // a new client replaces the old pair (as a moved guest)
        const int c = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
        const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(target_);
        if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
          ::close(c);
          ::close(s);
          continue;
        }
        close_pair(client, server);
        silent_.store(false);
        client = c;
        server = s;
        ++pairs_;
        continue;
      }
      for (int i = 1; i < 3 && forwarding; ++i) {
        if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const int from = i == 1 ? client : server, to = i == 1 ? server : client;
        const ssize_t n = ::read(from, buf.data(), buf.size());
        if (n <= 0 || ::send(to, buf.data(), static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) {
          close_pair(client, server); // a short write loses bytes: as a cut
          break;
        }
      }
    }
    close_pair(client, server);
  }

  std::uint16_t target_, port_ = 0;
  int listen_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false}, cut_{false}, silent_{false};
  std::atomic<int> pairs_{0};
};

std::vector<std::byte> frame_for(std::uint64_t i) {
  std::vector<std::byte> f(8 + (i * 131) % 3000);
  std::memcpy(f.data(), &i, 8);
  for (std::size_t k = 8; k < f.size(); ++k) f[k] = static_cast<std::byte>(i * 7 + k);
  return f;
}

} // namespace

TEST_CASE("a resumable path delivers every frame once across cut and silent connections",
          "[resumable]") {
  TcpListener listener;
  Proxy proxy(listener.port());
  ResumableOptions options;
  options.session = 0x5e55;
  options.window_bytes = 256 * 1024;
  options.stall_timeout = kSecond / 4;
  constexpr std::uint64_t kFrames = 20000;

  std::atomic<std::uint64_t> received{0};
  std::string failure;
  ResumablePath receiver(
      ResumablePath::Role::receiver, [&](Nanos t) { return listener.try_accept(t); }, options);
  std::thread reader([&] {
    std::vector<std::byte> head(8), body(1 << 16);
    while (received.load() < kFrames && failure.empty()) {
      std::size_t n = 0;
      const Errc e = receiver.recv(head, body, n, 30 * kSecond);
      if (e != Errc::ok) {
        failure = "recv: " + std::string(to_string(e)) + " " + receiver.last_error();
        break;
      }
      std::uint64_t i = 0;
      std::memcpy(&i, head.data(), 8);
      const auto want = frame_for(received.load());
      if (i != received.load() || n != want.size() ||
          std::memcmp(body.data(), want.data() + 8, n - 8) != 0) {
        failure = "frame " + std::to_string(received.load()) + ": got " + std::to_string(i);
        break;
      }
      received.fetch_add(1); // seq_cst: read by the main thread's final check
    }
  });

  ResumablePath sender(
      ResumablePath::Role::sender,
      [&](Nanos t) { return TcpPath::try_connect("127.0.0.1", proxy.port(), t); }, options);
  for (std::uint64_t i = 0; i < kFrames; ++i) {
    if (i % 4000 == 1000) proxy.cut();         // connection reset with bytes in flight
    if (i % 4000 == 3000) proxy.silence();     // a black hole: only the stall timeout sees it
    if (i == 9000) sender.request_reconnect(); // a membership notice: "you moved"
    const auto f = frame_for(i);
    REQUIRE(sender.send(std::span(f).first(8), std::span(f).subspan(8), 30 * kSecond) == Errc::ok);
  }
  CHECK(sender.flush(30 * kSecond) == Errc::ok);
  reader.join();
  INFO(failure);
  CHECK(failure.empty());
  CHECK(received.load() == kFrames);
  CHECK(sender.unacknowledged() == 0);
  // Every cut, silence and request made a new connection, and frames were re-sent.
  CHECK(sender.stats().connections >= 11);
  CHECK(sender.stats().resent > 0);
  CHECK(receiver.stats().connections == sender.stats().connections);
}

TEST_CASE("a resumable path refuses another session's or role's HELLO", "[resumable]") {
  TcpListener listener;
  ResumableOptions options;
  options.session = 1;
  options.handshake_timeout = kSecond;
  ResumablePath receiver(
      ResumablePath::Role::receiver, [&](Nanos t) { return listener.try_accept(t); }, options);
  ResumableOptions other = options;
  other.session = 2;
  std::thread wrong([&] {
    ResumablePath sender(
        ResumablePath::Role::sender,
        [&](Nanos t) { return TcpPath::try_connect("127.0.0.1", listener.port(), t); }, other);
    const std::array<std::byte, 4> f{};
    CHECK(sender.send(f, {}, kSecond / 2) == Errc::timed_out); // never accepted
  });
  std::array<std::byte, 64> buf{};
  std::size_t n = 0;
  CHECK(receiver.recv(buf, {}, n, kSecond) == Errc::timed_out);
  wrong.join();
  CHECK(receiver.last_error().find("session 2") != std::string::npos);
  CHECK(receiver.stats().connections == 0);
}

TEST_CASE("a resumable sender drops a connection whose ACK claims frames it never sent",
          "[resumable]") {
  auto listener = std::make_unique<TcpListener>();
  const std::uint16_t port = listener->port();
  ResumableOptions options;
  options.session = 9;
  options.stall_timeout = kSecond;
  ResumablePath sender(
      ResumablePath::Role::sender,
      [&](Nanos t) { return TcpPath::try_connect("127.0.0.1", port, t); }, options);
  // A hostile receiver: a correct HELLO, then an ACK for 1,000 frames when 1 was sent.
  std::thread hostile([&] {
    TcpPath c = listener->accept(5 * kSecond);
    std::array<std::byte, 24> hello{};
    std::memcpy(hello.data(), "IVMCRS-R", 8);
    std::memcpy(hello.data() + 8, &options.session, 8);
    REQUIRE(c.send(hello, {}, kSecond) == Errc::ok);
    std::array<std::byte, 64> in{};
    std::size_t n = 0;
    REQUIRE(c.recv(in, {}, n, 5 * kSecond) == Errc::ok); // the sender's HELLO
    REQUIRE(c.recv(in, {}, n, 5 * kSecond) == Errc::ok); // its one frame
    const std::uint64_t lie = 1000;
    std::array<std::byte, 8> ack{};
    std::memcpy(ack.data(), &lie, 8);
    REQUIRE(c.send(ack, {}, kSecond) == Errc::ok);
  });
  const std::array<std::byte, 4> f{};
  REQUIRE(sender.send(f, {}, 5 * kSecond) == Errc::ok);
  hostile.join();
  listener.reset(); // nobody to reconnect to
  // The next send reads the ACK, drops that connection and cannot make another.
  CHECK(sender.send(f, {}, kSecond / 2) == Errc::timed_out);
  CHECK(sender.last_error().find("only [0, 1] is possible") != std::string::npos);
  CHECK(sender.unacknowledged() == 1); // the frame is kept for an honest receiver
}

TEST_CASE("a resumable sender's flush after a long idle reads the ACK waiting in the socket",
          "[resumable]") {
  // A link that went back to its local path leaves the remote connection idle, the receiver's
  // last ACK unread; the receiver then stops serving the path (its stream ended on the ring).
  // The flush must take that ACK, not call the idle time a stall and reconnect to nobody.
  auto listener = std::make_unique<TcpListener>();
  const std::uint16_t port = listener->port();
  ResumableOptions options;
  options.session = 7;
  options.stall_timeout = kSecond / 5;
  ResumablePath sender(
      ResumablePath::Role::sender,
      [&](Nanos t) { return TcpPath::try_connect("127.0.0.1", port, t); }, options);
  std::size_t got = 0;
  Errc received = Errc::timed_out;
  std::thread receiving([&] {
    ResumablePath receiver(
        ResumablePath::Role::receiver, [&](Nanos t) { return listener->try_accept(t); }, options);
    std::array<std::byte, 64> buf{};
    received = receiver.recv(buf, {}, got, 5 * kSecond); // caught up: its ACK is sent
  });                                                    // then the receiver is gone
  const std::array<std::byte, 16> frame{};
  REQUIRE(sender.send(frame, {}, 5 * kSecond) == Errc::ok);
  receiving.join();
  REQUIRE(received == Errc::ok);
  CHECK(got == frame.size());
  listener.reset();                                            // nobody accepts any more
  std::this_thread::sleep_for(std::chrono::milliseconds(500)); // idle past stall_timeout
  CHECK(sender.unacknowledged() == 1);
  CHECK(sender.flush(2 * kSecond) == Errc::ok);
  CHECK(sender.unacknowledged() == 0);
  CHECK(sender.stats().connections == 1);
}

TEST_CASE("a resumable receiver that only polls completes a handshake whose HELLO is late",
          "[resumable]") {
  // A link receiver reading its local path looks at the remote path with a zero timeout. A
  // sender reconnecting through two user-networking stacks gets its HELLO there late: the
  // receiver must wait for it rather than drop the connection it just accepted.
  TcpListener listener;
  ResumableOptions options;
  options.session = 9;
  ResumablePath receiver(
      ResumablePath::Role::receiver, [&](Nanos t) { return listener.try_accept(t); }, options);
  std::atomic<bool> greeted{false};
  std::thread sender([&] {
    TcpPath c = TcpPath::connect("127.0.0.1", listener.port(), kSecond);
    std::this_thread::sleep_for(std::chrono::milliseconds(100)); // the HELLO is late
    std::array<std::byte, 24> hello{};
    const char magic[8] = {'I', 'V', 'M', 'C', 'R', 'S', '-', 'S'};
    std::memcpy(hello.data(), magic, 8);
    std::memcpy(hello.data() + 8, &options.session, 8);
    REQUIRE(c.send(hello, {}, kSecond) == Errc::ok);
    std::array<std::byte, 24> theirs{};
    std::size_t n = 0;
    REQUIRE(c.recv(theirs, {}, n, 2 * kSecond) == Errc::ok);
    CHECK(n == 24);
    greeted.store(true); // seq_cst: read after join
  });
  std::array<std::byte, 64> buf{};
  std::size_t n = 0;
  for (int i = 0; i < 200 && receiver.stats().connections == 0; ++i) {
    CHECK(receiver.recv(buf, {}, n, 0) == Errc::timed_out); // only looks: nothing was sent
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  sender.join();
  CHECK(greeted.load());
  CHECK(receiver.stats().connections == 1);
}

TEST_CASE("a tcp path's receive buffer stays bounded however long the stream", "[tcp][memory]") {
  // 4,100-byte frames: 64 KiB reads almost always end inside one, the case that grew the
  // buffer by every byte received (a Xen domU's receiver was OOM-killed after 45 MB).
  TcpListener listener;
  constexpr std::size_t kFrame = 4100;
  constexpr std::size_t kFrames = 12'000; // 49 MB
  std::atomic<std::size_t> sent{0};
  std::thread sender([port = listener.port(), &sent] {
    TcpPath out = TcpPath::connect("127.0.0.1", port, 5 * kSecond);
    std::vector<std::byte> body(kFrame);
    for (std::size_t i = 0; i < kFrames; ++i) {
      std::memcpy(body.data(), &i, sizeof i);
      if (out.send({}, body, 5 * kSecond) != Errc::ok) return;
      sent.fetch_add(1, std::memory_order_relaxed); // a count read after join(): no ordering
    }
  });
  TcpPath in = listener.accept(5 * kSecond);
  std::vector<std::byte> body(kFrame);
  std::size_t most_held = 0, in_order = 0;
  for (std::size_t i = 0; i < kFrames; ++i) {
    std::size_t n = 0;
    REQUIRE(in.recv({}, body, n, 5 * kSecond) == Errc::ok);
    std::size_t seq = 0;
    std::memcpy(&seq, body.data(), sizeof seq);
    in_order += n == kFrame && seq == i;
    most_held = std::max(most_held, in.held());
  }
  sender.join();
  CHECK(sent.load(std::memory_order_relaxed) == kFrames); // join() ordered it already
  CHECK(in_order == kFrames);
  CHECK(most_held <= 65536 + 4 + kFrame); // one read beyond a frame, not 49 MB
  CHECK(most_held >= kFrame);             // and it did buffer (the check can fail)
}
