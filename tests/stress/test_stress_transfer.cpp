// At least 1 GiB between two real processes through the ivshmem server, in every notification
// policy, every message checked (contents derive from its sequence number, so a lost,
// duplicated, reordered or corrupted message is caught where it happens).
#include "ivmc/kvm/host_platform.hpp"

#include "../support/host_fixture.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstring>
#include <vector>

using namespace ivmc;
using namespace ivmc::test;

namespace {
constexpr std::uint64_t kBytes = std::uint64_t{1} << 30;
constexpr std::size_t kMax = 64 * 1024;
constexpr std::uint32_t kRing = 1u << 20;
} // namespace

TEST_CASE("1 GiB through the server with every message checked, in every policy",
          "[host][stress]") {
  const auto policy =
      GENERATE(NotifyPolicy::polling, NotifyPolicy::on_demand, NotifyPolicy::per_packet,
               NotifyPolicy::atw, NotifyPolicy::spin_then_block);
  ServerThread server(kvm::HostPlatform::region_bytes_for(kRing), "stress");
  kvm::EndpointOptions opts;
  opts.channel.ring_bytes = kRing;
  opts.channel.notify.policy = policy;
  opts.channel.liveness.peer_timeout = 10 * kSecond;
  auto platform = kvm::HostPlatform::connect(server.socket_path(), 5 * kSecond);
  auto creator = platform->create_channel(opts);
  const pid_t child = spawn([&] {
    auto mine = kvm::HostPlatform::connect(server.socket_path(), 5 * kSecond);
    auto ep = mine->attach_channel(opts, 5 * kSecond);
    std::vector<std::byte> msg(kMax);
    std::uint64_t sent = 0;
    for (std::uint64_t seq = 0; sent < kBytes; ++seq) {
      const std::size_t n = message_size(seq, kMax);
      fill_message(msg.data(), n, seq);
      if (ep->channel().send(std::span(msg.data(), n), 30 * kSecond) != Errc::ok) return 10;
      sent += n;
    }
    return ep->channel().close(30 * kSecond) == Errc::ok ? 0 : 11;
  });
  REQUIRE(creator->wait_for_peer(5 * kSecond) == Errc::ok);
  std::vector<std::byte> got(kMax), want(kMax);
  std::uint64_t bytes = 0, bad = 0, seq = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (;; ++seq) {
    std::size_t n = 0;
    const Errc e = creator->channel().recv(got, n, 30 * kSecond);
    if (e == Errc::peer_closed) break;
    REQUIRE(e == Errc::ok);
    const std::size_t expect = message_size(seq, kMax);
    fill_message(want.data(), expect, seq);
    if (n != expect || std::memcmp(got.data(), want.data(), n) != 0) ++bad;
    bytes += n;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto st = creator->channel().stats();
  std::printf("stress %-16s %.2f GiB in %.1f s (%.2f GB/s, checked), %llu messages, "
              "%llu sleeps, %llu wakeups\n",
              std::string(to_string(policy)).c_str(), bytes / double(1 << 30), s, bytes / s / 1e9,
              static_cast<unsigned long long>(seq), static_cast<unsigned long long>(st.sleeps),
              static_cast<unsigned long long>(st.wakeups));
  CHECK(bad == 0);
  CHECK(bytes >= kBytes);
  CHECK(reap(child, 120) == 0);
}
