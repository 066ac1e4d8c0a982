// A guest is killed mid-transfer (SIGKILL to its QEMU): its peer detects it within a bounded
// time and does not hang.
// - A host process streaming to a guest learns it from the ivshmem server: QEMU's chardev
//   socket closes, the server tells the other peers, HostPlatform's ticker marks the channel's
//   peer dead. The host's heartbeat timeout is set far longer than the bound, so only the
//   server's notice can meet it.
// - A guest hears no server notices (QEMU keeps them to itself): a guest whose peer guest was
//   killed finds it by the peer's heartbeat standing still (--peer-timeout, short here).
#include "vm_fixture.hpp"

#include <chrono>
#include <thread>
#include <vector>

using namespace ivmc;
using namespace ivmc::vmtest;

namespace {

constexpr Nanos kNoticeBound = 5 * kSecond;     // kill -> peer_dead on the host
constexpr Nanos kHostHeartbeat = 120 * kSecond; // the host's own heartbeat timeout: out of play
constexpr double kGuestPeerTimeout = 2.0;       // seconds, the surviving guest's
constexpr Nanos kGuestBound = 20 * kSecond;     // kill -> the survivor's IVMC-RESULT

} // namespace

TEST_CASE("a guest killed mid-transfer: the host peer gets the server's notice", "[vm][kill]") {
  Host host("kill-h");
  auto platform = kvm::HostPlatform::connect(host.socket(), 5 * kSecond, kVectors);
  kvm::EndpointOptions e = endpoint(NotifyPolicy::polling);
  e.channel.liveness.peer_timeout = kHostHeartbeat;
  auto ep = platform->create_channel(e);
  // The guest would receive 64 GiB: it is mid-stream whenever it is killed.
  auto guest = launch(&host, {"kill-h",
                              {"recv", "--bytes", "64G", "--role", "attach", "--offset", "0",
                               "--peer-timeout", "120"},
                              false,
                              {}});
  wait_for_guest(*ep, *guest);
  const auto guest_id = ep->peer_id();
  REQUIRE(guest_id.has_value());

  Channel& ch = ep->channel();
  std::vector<std::byte> message(4096);
  constexpr std::uint64_t kBeforeKill = 8u << 20; // 32 rings' worth: the guest is consuming
  std::uint64_t sent = 0;
  Nanos killed_at = 0;
  Errc last = Errc::ok;
  for (;;) {
    posix::fill_stream(sent, message);
    last = ch.send(message, 60 * kSecond);
    if (last != Errc::ok) break;
    sent += message.size();
    if (sent == kBeforeKill) {
      guest->kill(); // SIGKILL by pid, reaped
      killed_at = platform->clock().now();
    }
    if (sent >= (1ull << 34)) FAIL("16 GiB sent: the guest was never killed or never noticed");
  }
  const Nanos detected = platform->clock().now() - killed_at;
  INFO("sent " << sent << " bytes; " << ch.error_detail());
  REQUIRE(killed_at != 0); // it failed after the kill, not before
  CHECK(last == Errc::peer_dead);
  CHECK(ch.error_detail().find("ivshmem server reported peer " + std::to_string(*guest_id)) !=
        std::string::npos);
  CHECK(detected < kNoticeBound);
  // Every later call fails at once instead of waiting.
  const Nanos t0 = platform->clock().now();
  CHECK(ch.send(message, 10 * kSecond) == Errc::peer_dead);
  CHECK(platform->clock().now() - t0 < kSecond);
  figure("killed guest -> host peer_dead (server notice)", detected / 1e6, "ms");
}

TEST_CASE("a guest killed mid-transfer: the peer guest detects it by heartbeat", "[vm][kill]") {
  Host host("kill-g");
  const std::string peer_timeout = std::to_string(kGuestPeerTimeout);
  auto a = launch(&host, {"kill-g-a",
                          {"send", "--bytes", "64G", "--message", "4096", "--policy", "polling",
                           "--role", "create", "--offset", "0", "--peer-timeout", "120"},
                          false,
                          {}});
  auto b = launch(&host, {"kill-g-b",
                          {"recv", "--bytes", "64G", "--role", "attach", "--offset", "0",
                           "--peer-timeout", peer_timeout},
                          false,
                          {}});
  // Both agents opened the device; give the stream a moment to get going, then kill the sender.
  REQUIRE(a->wait_for_console("IVMC-INFO", kBootBudget));
  REQUIRE(b->wait_for_console("IVMC-INFO", kBootBudget));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  REQUIRE(a->running());
  a->kill();
  const Nanos killed_at = posix::MonotonicClock::read();
  const bool reported = b->wait_for_console("IVMC-RESULT", kGuestBound);
  const Nanos detected = posix::MonotonicClock::read() - killed_at;
  const kvm::GuestOutcome out = b->wait();
  INFO("survivor: " << out.describe());
  REQUIRE(reported);
  REQUIRE(out.agent_status.has_value()); // it ended by itself, not at the launcher's timeout
  REQUIRE(out.reports.size() == 1);
  const posix::ReportFields& r = out.reports.front();
  CHECK(r.at("ok") == "0");
  CHECK(r.at("error").find("peer_dead") != std::string::npos);
  // Mid-transfer: it had received more than a ring's worth, and not everything.
  CHECK(std::stoull(r.at("bytes")) > kRing);
  CHECK(std::stoull(r.at("bytes")) < (64ull << 30));
  // Its peer timeout plus boot-free slack (a TCG guest's clock and the console add some).
  CHECK(detected > static_cast<Nanos>(kGuestPeerTimeout * 1e9) / 2);
  figure("killed guest -> peer guest peer_dead (heartbeat, timeout 2 s)", detected / 1e6, "ms");
}
