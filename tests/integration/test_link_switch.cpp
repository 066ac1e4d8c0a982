// A link between two real processes: the shared-memory channel through a real ivshmem server,
// the remote path over TCP loopback, switched back and forth many times mid-stream. Every
// message is checked; nothing may be lost, duplicated or reordered.
#include "ivmc/core/link.hpp"
#include "ivmc/kvm/host_platform.hpp"
#include "ivmc/posix/tcp_path.hpp"

#include "../support/host_fixture.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <vector>

using namespace ivmc;
using namespace ivmc::test;

namespace {

constexpr std::uint32_t kRing = kTestRing;
kvm::EndpointOptions endpoint(NotifyPolicy policy) {
  return test_endpoint(policy);
}

// The sender's side of the local path: a fresh channel instance per epoch, in one slot of the
// region. An instance is torn down only after the receiver consumed everything and detached.
struct SenderLocal {
  kvm::HostPlatform& platform;
  NotifyPolicy policy;
  std::unique_ptr<kvm::HostEndpoint> endpoint{};
  std::unique_ptr<ChannelPath> path{};
  std::uint64_t epoch = 0;

  LocalPath open() {
    if (!endpoint) {
      endpoint = platform.create_channel(endpoint_options());
      path = std::make_unique<ChannelPath>(endpoint->channel());
      ++epoch;
    }
    return {path.get(), epoch};
  }
  kvm::EndpointOptions endpoint_options() const { return ::endpoint(policy); }
  void release() {
    if (!endpoint) return;
    Channel& ch = endpoint->channel();
    ch.close(10 * kSecond); // pending data is consumed before the instance goes
    for (int i = 0; i < 10000 && !ch.peer_detached(); ++i) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    path.reset();
    endpoint.reset();
  }
};

struct ReceiverLocal {
  kvm::HostPlatform& platform;
  NotifyPolicy policy;
  std::unique_ptr<kvm::HostEndpoint> endpoint{};
  std::unique_ptr<ChannelPath> path{};
  std::uint64_t epoch = 0;

  FramePath* find(std::uint64_t wanted, Nanos timeout) {
    if (endpoint && epoch == wanted) return path.get();
    release();
    endpoint = platform.attach_channel(::endpoint(policy), timeout);
    path = std::make_unique<ChannelPath>(endpoint->channel());
    epoch = wanted;
    return path.get();
  }
  void release() {
    path.reset();
    endpoint.reset(); // detaches: the sender may reuse the slot
  }
};

std::vector<std::byte> message(std::uint64_t seq) {
  std::vector<std::byte> m(message_size(seq, 3000) + 8);
  fill_message(m.data() + 8, m.size() - 8, seq);
  std::memcpy(m.data(), &seq, 8);
  return m;
}

} // namespace

TEST_CASE("a link between two processes switches between shared memory and TCP mid-stream "
          "without losing a byte",
          "[link][integration]") {
  const auto policy = GENERATE(NotifyPolicy::polling, NotifyPolicy::on_demand);
  INFO("policy " << to_string(policy));
  constexpr std::uint64_t kMessages = 60000;
  constexpr std::uint64_t kSwitchEvery = 300; // 200 switches
  ServerThread server(kvm::HostPlatform::region_bytes_for(kRing), "link");
  posix::TcpListener listener;
  const std::uint16_t port = listener.port();

  const pid_t sender = spawn([&] {
    auto platform = kvm::HostPlatform::connect(server.socket_path(), 5 * kSecond);
    posix::TcpPath tcp = posix::TcpPath::connect("127.0.0.1", port, 5 * kSecond);
    SenderLocal local{*platform, policy};
    bool co_resident = false;
    std::uint64_t version = 0;
    LinkEnvironment env;
    env.remote = &tcp;
    env.open_local = [&](Nanos) { return local.open(); };
    env.release_local = [&] { local.release(); };
    env.believes_co_resident = [&] { return co_resident; };
    env.view_version = [&] { return version; };
    env.probe_co_resident = [&] { return co_resident; };
    LinkSender link(env, {}, platform->clock());
    for (std::uint64_t seq = 0; seq < kMessages; ++seq) {
      if (seq % kSwitchEvery == kSwitchEvery / 2) { // a migration in or out
        co_resident = !co_resident;
        ++version;
      }
      if (link.send(message(seq), 10 * kSecond) != Errc::ok) return 10;
    }
    if (link.finish(10 * kSecond) != Errc::ok) return 11;
    const auto& s = link.stats();
    std::printf("link sender: %llu local, %llu remote, %llu+%llu switches, mean switch %.1f us, "
                "max %.1f us\n",
                (unsigned long long)s.sent_local, (unsigned long long)s.sent_remote,
                (unsigned long long)s.switches_to_local, (unsigned long long)s.switches_to_remote,
                s.switch_samples ? s.switch_ns_total / 1e3 / s.switch_samples : 0.0,
                s.switch_ns_max / 1e3);
    local.release();
    return (s.switches_to_local >= 99 && s.lost_messages == 0) ? 0 : 12;
  });

  auto platform = kvm::HostPlatform::connect(server.socket_path(), 5 * kSecond);
  posix::TcpPath tcp = listener.accept(5 * kSecond);
  ReceiverLocal local{*platform, policy};
  LinkEnvironment env;
  env.remote = &tcp;
  env.find_local = [&](std::uint64_t epoch, Nanos timeout) { return local.find(epoch, timeout); };
  env.release_local = [&] { local.release(); };
  LinkReceiver link(env, platform->clock());
  std::vector<std::byte> buf(8192);
  std::uint64_t seq = 0, bad = 0, bytes = 0;
  for (;; ++seq) {
    std::size_t n = 0;
    const Errc e = link.recv(buf, n, 10 * kSecond);
    if (e == Errc::peer_closed) break;
    REQUIRE(e == Errc::ok);
    const auto want = message(seq);
    if (n != want.size() || std::memcmp(buf.data(), want.data(), n) != 0) ++bad;
    bytes += n;
  }
  CHECK(seq == kMessages);
  CHECK(bad == 0);
  CHECK(link.stats().lost_messages == 0);
  CHECK(link.stats().duplicates == 0);
  CHECK(link.stats().receiver_switches >= 198);
  CHECK(reap(sender, 60) == 0);
}
