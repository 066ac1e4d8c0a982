// The channel between real processes through a real ivshmem server: streaming with checks in
// every notification policy, a peer killed mid-transfer, a stopped peer, orderly close.
#include "ivmc/bench/liveness.hpp"
#include "ivmc/kvm/host_platform.hpp"
#include "ivmc/kvm/ivshmem_server_thread.hpp"

#include "../support/host_fixture.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <vector>

using namespace ivmc;
using namespace ivmc::test;

namespace {

constexpr std::uint32_t kRing = kTestRing;
kvm::EndpointOptions endpoint(NotifyPolicy policy) {
  return test_endpoint(policy);
}

// Sends messages first..first+count-1 (contents derived from their numbers).
int send_range(Channel& ch, std::uint64_t first, std::uint64_t count, std::size_t max) {
  std::vector<std::byte> msg(max);
  for (std::uint64_t seq = first; seq < first + count; ++seq) {
    const std::size_t n = message_size(seq, max);
    fill_message(msg.data(), n, seq);
    if (ch.send(std::span(msg.data(), n), 10 * kSecond) != Errc::ok) return 10;
  }
  return 0;
}

// Receives and checks messages first..first+count-1; returns how many were right.
std::uint64_t recv_range(Channel& ch, std::uint64_t first, std::uint64_t count, std::size_t max,
                         Errc* last = nullptr) {
  std::vector<std::byte> got(max), want(max);
  for (std::uint64_t seq = first; seq < first + count; ++seq) {
    std::size_t n = 0;
    const Errc e = ch.recv(got, n, 10 * kSecond);
    if (last) *last = e;
    if (e != Errc::ok) return seq - first;
    const std::size_t expect = message_size(seq, max);
    fill_message(want.data(), expect, seq);
    if (n != expect || std::memcmp(got.data(), want.data(), n) != 0) return seq - first;
  }
  return count;
}

} // namespace

TEST_CASE("two processes stream both ways through the ivshmem server in every policy",
          "[host][integration]") {
  const auto policy =
      GENERATE(NotifyPolicy::polling, NotifyPolicy::on_demand, NotifyPolicy::per_packet,
               NotifyPolicy::atw, NotifyPolicy::spin_then_block);
  INFO("policy " << to_string(policy));
  ServerThread server(kvm::HostPlatform::region_bytes_for(kRing), "stream");
  auto platform = kvm::HostPlatform::connect(server.socket_path(), 5 * kSecond);
  auto creator = platform->create_channel(endpoint(policy));
  constexpr std::uint64_t kCount = 20000;
  constexpr std::size_t kMax = 8192;
  const pid_t child = spawn([&] {
    auto mine = kvm::HostPlatform::connect(server.socket_path(), 5 * kSecond);
    auto ep = mine->attach_channel(endpoint(policy), 5 * kSecond);
    if (int rc = send_range(ep->channel(), 0, kCount, kMax); rc != 0) return rc;
    if (recv_range(ep->channel(), kCount, kCount, kMax) != kCount) return 11;
    return ep->channel().close(10 * kSecond) == Errc::ok ? 0 : 12;
  });
  REQUIRE(creator->wait_for_peer(5 * kSecond) == Errc::ok);
  CHECK(recv_range(creator->channel(), 0, kCount, kMax) == kCount);
  CHECK(send_range(creator->channel(), kCount, kCount, kMax) == 0);
  std::vector<std::byte> buf(16);
  std::size_t n = 0;
  CHECK(creator->channel().recv(buf, n, 10 * kSecond) == Errc::peer_closed);
  CHECK(reap(child, 60) == 0);
  const auto s = creator->channel().stats();
  CHECK(s.messages_received == kCount);
  CHECK(s.messages_sent == kCount);
}

TEST_CASE("a peer killed mid-transfer: every complete message arrives, then peer_dead, the "
          "survivor re-creates the channel for a new peer",
          "[host][integration][liveness]") {
  ServerThread server(kvm::HostPlatform::region_bytes_for(kRing), "kill");
  auto platform = kvm::HostPlatform::connect(server.socket_path(), 5 * kSecond);
  auto creator = platform->create_channel(endpoint(NotifyPolicy::on_demand));
  constexpr std::size_t kMax = 4096;
  const pid_t child = spawn([&] {
    auto mine = kvm::HostPlatform::connect(server.socket_path(), 5 * kSecond);
    auto ep = mine->attach_channel(endpoint(NotifyPolicy::on_demand), 5 * kSecond);
    send_range(ep->channel(), 0, ~std::uint64_t{0} >> 1, kMax); // until killed
    return 0;
  });
  REQUIRE(creator->wait_for_peer(5 * kSecond) == Errc::ok);
  REQUIRE(recv_range(creator->channel(), 0, 3000, kMax) == 3000);
  REQUIRE(kill(child, SIGKILL) == 0);
  CHECK(reap(child, 10) == -SIGKILL);
  // Whatever the peer completely wrote before it died is still delivered, in order.
  Errc last = Errc::ok;
  const auto t0 = std::chrono::steady_clock::now();
  const std::uint64_t rest = recv_range(creator->channel(), 3000, 1u << 30, kMax, &last);
  CHECK(last == Errc::peer_dead);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
  CHECK(creator->channel().error_detail().find("disconnected") != std::string::npos);
  INFO("messages drained after the kill: " << rest);
  CHECK(creator->channel().stats().messages_received == 3000 + rest);

  // Recovery: the survivor re-creates the channel in the same place; a new peer uses it.
  creator.reset();
  auto again = platform->create_channel(endpoint(NotifyPolicy::on_demand));
  const pid_t second = spawn([&] {
    auto mine = kvm::HostPlatform::connect(server.socket_path(), 5 * kSecond);
    auto ep = mine->attach_channel(endpoint(NotifyPolicy::on_demand), 5 * kSecond);
    if (int rc = send_range(ep->channel(), 0, 500, kMax); rc != 0) return rc;
    return ep->channel().close(10 * kSecond) == Errc::ok ? 0 : 12;
  });
  REQUIRE(again->wait_for_peer(5 * kSecond) == Errc::ok);
  CHECK(recv_range(again->channel(), 0, 500, kMax) == 500);
  CHECK(reap(second, 30) == 0);
}

TEST_CASE("a stopped peer (still connected to the server) is found dead by its heartbeat",
          "[host][integration][liveness]") {
  ServerThread server(kvm::HostPlatform::region_bytes_for(kRing), "stop");
  auto platform = kvm::HostPlatform::connect(server.socket_path(), 5 * kSecond);
  auto opts = endpoint(NotifyPolicy::on_demand);
  opts.channel.liveness.peer_timeout = kSecond / 2;
  opts.channel.liveness.wait_slice = kSecond / 20;
  auto creator = platform->create_channel(opts);
  const pid_t child = spawn([&]() -> int {
    auto mine = kvm::HostPlatform::connect(server.socket_path(), 5 * kSecond);
    auto ep = mine->attach_channel(opts, 5 * kSecond);
    send_range(ep->channel(), 0, 10, 64);
    for (;;) pause(); // alive, connected, and about to be stopped
  });
  REQUIRE(creator->wait_for_peer(5 * kSecond) == Errc::ok);
  REQUIRE(recv_range(creator->channel(), 0, 10, 64) == 10);
  REQUIRE(kill(child, SIGSTOP) == 0);
  std::vector<std::byte> buf(64);
  std::size_t n = 0;
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(creator->channel().recv(buf, n, 10 * kSecond) == Errc::peer_dead);
  const auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited < std::chrono::seconds(3));
  CHECK(creator->channel().error_detail().find("heartbeat") != std::string::npos);
  kill(child, SIGKILL);
  reap(child, 10);
}

TEST_CASE("close returns only after the peer consumed everything", "[host][integration]") {
  ServerThread server(kvm::HostPlatform::region_bytes_for(kRing), "close");
  auto platform = kvm::HostPlatform::connect(server.socket_path(), 5 * kSecond);
  auto creator = platform->create_channel(endpoint(NotifyPolicy::on_demand));
  const pid_t child = spawn([&] {
    auto mine = kvm::HostPlatform::connect(server.socket_path(), 5 * kSecond);
    auto ep = mine->attach_channel(endpoint(NotifyPolicy::on_demand), 5 * kSecond);
    if (send_range(ep->channel(), 0, 300, 1024) != 0) return 10;
    const Errc e = ep->channel().close(20 * kSecond);
    return e == Errc::ok && ep->channel().unconsumed_outgoing() == 0 ? 0 : 11;
  });
  REQUIRE(creator->wait_for_peer(5 * kSecond) == Errc::ok);
  std::this_thread::sleep_for(std::chrono::milliseconds(200)); // the child is now in close()
  CHECK(recv_range(creator->channel(), 0, 300, 1024) == 300);
  std::vector<std::byte> buf(16);
  std::size_t n = 0;
  CHECK(creator->channel().recv(buf, n, 5 * kSecond) == Errc::peer_closed);
  CHECK(reap(child, 30) == 0);
}

TEST_CASE("a SIGKILLed server: both streaming peers fail naming it within 1 s, nothing wrong is "
          "delivered, and a restarted server cleans up what it left",
          "[host][integration][liveness]") {
  const bench::ServerKill k = bench::measure_server_kill("test");
  INFO("receiver: " << to_string(k.receiver_error) << " after " << k.receiver_after_kill / 1e6
                    << " ms: " << k.receiver_detail);
  INFO("sender: " << to_string(k.sender_error) << " after " << k.sender_after_kill / 1e6
                  << " ms: " << k.sender_detail);
  CHECK(k.received >= 2000);
  CHECK_FALSE(k.delivered_garbage);
  CHECK(k.receiver_error == Errc::peer_dead);
  CHECK(k.sender_error == Errc::peer_dead);
  CHECK(k.receiver_detail.find("the ivshmem server is gone") != std::string::npos);
  CHECK(k.sender_detail.find("the ivshmem server is gone") != std::string::npos);
  CHECK(k.receiver_after_kill >= 0);
  CHECK(k.receiver_after_kill < kSecond);
  CHECK(k.sender_after_kill >= 0);
  CHECK(k.sender_after_kill < kSecond);

  // The dead server left its socket and region; a new server on the same names removes them
  // and serves a fresh, zero-filled region.
  struct stat st {};
  CHECK(::lstat(k.socket_path.c_str(), &st) == 0);
  CHECK(::lstat(("/dev/shm/" + k.shm_name).c_str(), &st) == 0);
  std::vector<std::string> lines;
  kvm::IvshmemServerOptions o;
  o.socket_path = k.socket_path;
  o.shm_name = k.shm_name;
  o.size = kvm::HostPlatform::region_bytes_for(kRing);
  o.log = [&](std::string_view line) { lines.emplace_back(line); };
  {
    kvm::IvshmemServerThread restarted(o);
    REQUIRE_FALSE(lines.empty());
    CHECK(lines.front().find("dead server") != std::string::npos);
    auto platform = kvm::HostPlatform::connect(o.socket_path, 5 * kSecond);
    const SharedRegion region = platform->region();
    CHECK(std::all_of(region.base, region.base + region.size,
                      [](std::byte b) { return b == std::byte{0}; }));
    CHECK(platform->server_gone().empty());
  }
  CHECK(::lstat(k.socket_path.c_str(), &st) != 0); // the orderly stop removed them
  CHECK(::lstat(("/dev/shm/" + k.shm_name).c_str(), &st) != 0);
}

TEST_CASE("a SIGKILLed peer wakes its sleeping survivor at once, not at the end of its wait slice",
          "[host][integration][liveness]") {
  // The survivor sleeps in recv() with the default 50 ms wait slice. Before the platform woke
  // it, it noticed at the end of its slice: about 25 ms after the notice on average, up to 75.
  // The target (<= 5 ms) is measured by ivmc-bench-liveness; here a bound CI noise leaves
  // alone but the slice behaviour fails.
  const auto trials = bench::measure_death_wake(20);
  std::vector<Nanos> after_notice;
  for (const auto& t : trials) {
    INFO(to_string(t.error) << ": " << t.detail);
    CHECK(t.error == Errc::peer_dead);
    CHECK(t.detail.find("disconnected") != std::string::npos);
    after_notice.push_back(t.after_notice);
  }
  const auto p = bench::percentiles(after_notice);
  INFO("survivor's error - server's notice, ms: min " << p.min_ms << " p50 " << p.p50_ms << " p90 "
                                                      << p.p90_ms << " max " << p.max_ms);
  CHECK(p.min_ms >= 0);
  CHECK(p.p50_ms <= 5.0);
  CHECK(p.max_ms <= 50.0);
}
