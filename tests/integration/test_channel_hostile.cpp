// A channel between two real processes over real shared memory (an anonymous shared mapping
// inherited across fork), and a third process that writes into it with no ivmc code at all:
// the hostile cases of issue 16 that the ring itself must catch. Each is detected as a named
// protocol_violation within 1 s on the side that would otherwise wait forever or take forged
// data; nothing that the sender did not send is delivered as ok; no process dies of a signal.
//
// Doorbells here never ring (SilentDoorbell): a sleeping endpoint wakes only at the end of its
// wait slice, the worst case for how long detection takes.
#include "ivmc/core/channel.hpp"

#include "../support/local_platform.hpp"
#include "../support/process.hpp"

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <thread>
#include <vector>

using namespace ivmc;
using namespace ivmc::test;

namespace {

constexpr std::uint32_t kRing = 1024;
constexpr std::size_t kRing0 = 4096; // ring 0 (creator -> attacher) starts on the second page
constexpr std::size_t kRing1 = 4096 + kRing;
constexpr Nanos kMs = 1'000'000;

// A doorbell whose rings never arrive: wait() sleeps its whole timeout.
class SilentDoorbell final : public Doorbell {
public:
  void ring(Wake) override {}
  WaitResult wait(Wake, Nanos timeout) override {
    std::this_thread::sleep_for(std::chrono::nanoseconds(timeout));
    return WaitResult::timed_out;
  }
};

// Shared memory both processes (and the forger) see: MAP_SHARED survives fork.
struct SharedArea {
  SharedArea() {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    bytes = static_cast<std::byte*>(p);
  }
  ~SharedArea() { munmap(bytes, size); }
  SharedRegion region() const { return {bytes, size}; }
  std::uint64_t word(std::size_t at) const {
    std::uint64_t w;
    std::memcpy(&w, bytes + at, 8);
    return w;
  }
  const std::size_t size = Channel::area_bytes(kRing, kRing);
  std::byte* bytes;
};

// The foreign writer: a process that only stores bytes into the shared area.
void forge(SharedArea& area, std::size_t at, const void* bytes, std::size_t n) {
  const pid_t pid = spawn([&] {
    std::memcpy(area.bytes + at, bytes, n);
    return 0;
  });
  REQUIRE(reap(pid, 5) == 0);
}

// Waits (bounded) until `pred` holds on the shared area.
void await(const std::function<bool()>& pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!pred()) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

ChannelConfig config(NotifyPolicy policy, bool checked = false) {
  ChannelConfig c;
  c.ring_bytes = kRing;
  c.notify.policy = policy;
  c.record_crc32c = checked;
  c.liveness.peer_timeout = 10'000 * kMs; // liveness is not what these cases are about
  return c;                               // wait_slice: the default 50 ms
}

// Message `seq` of the stream: its number in its first 8 bytes, then bytes derived from it.
std::vector<std::byte> message(std::uint64_t seq, std::size_t size) {
  std::vector<std::byte> m(std::max<std::size_t>(size, 8));
  std::memcpy(m.data(), &seq, 8);
  for (std::size_t i = 8; i < m.size(); ++i) m[i] = static_cast<std::byte>(seq * 31 + i);
  return m;
}
bool is_message(const std::vector<std::byte>& got, std::size_t n) {
  if (n < 8) return false;
  std::uint64_t seq;
  std::memcpy(&seq, got.data(), 8);
  const auto want = message(seq, n);
  return want.size() == n && std::memcmp(want.data(), got.data(), n) == 0;
}

using Wall = std::chrono::steady_clock;

} // namespace

TEST_CASE("zeroed headers at the reader's position: both sides end with a named violation",
          "[channel][hostile][processes]") {
  const auto policy = GENERATE(NotifyPolicy::polling, NotifyPolicy::on_demand);
  INFO("policy " << to_string(policy));
  SharedArea area;
  SilentDoorbell bell;
  SteadyClock clock;
  auto reader = Channel::create(area.region(), config(policy), bell, clock);
  REQUIRE(reader.error == Errc::ok);
  // The sender is side 1: it fills ring 1 (read by side 0), then waits for space, forever.
  const pid_t sender = spawn([&] {
    SteadyClock c;
    SilentDoorbell b;
    auto me = Channel::attach(area.region(), config(policy), b, c);
    if (me.error != Errc::ok) return 10;
    for (std::uint64_t seq = 0;; ++seq) {
      const Errc e = me.channel->send(message(seq, 200), kForever);
      if (e == Errc::ok) continue;
      if (e != Errc::protocol_violation) return 11;
      return me.channel->error_detail().find("side 0 found the shared area broken") !=
                     std::string::npos
                 ? 0
                 : 12;
    }
  });
  await([&] { return area.word(192 + 256) >= 800; }); // direction[1].produced: the ring is full
  const std::uint64_t zero = 0;
  forge(area, kRing1, &zero, 8); // the header at the reader's position
  const auto t0 = Wall::now();
  std::vector<std::byte> buf(256);
  std::size_t n = 0;
  CHECK(reader.channel->recv(buf, n, kForever) == Errc::protocol_violation);
  CHECK(Wall::now() - t0 < std::chrono::seconds(1));
  CHECK(reader.channel->error_detail().find("is 0, but the peer's produced index") !=
        std::string::npos);
  CHECK(reap(sender, 1) == 0); // told, not waiting forever
}

TEST_CASE("a close whose produced index does not match the records is a violation",
          "[channel][hostile][processes]") {
  const auto policy = GENERATE(NotifyPolicy::polling, NotifyPolicy::on_demand);
  INFO("policy " << to_string(policy));
  SharedArea area;
  SilentDoorbell bell;
  SteadyClock clock;
  auto reader = Channel::create(area.region(), config(policy), bell, clock);
  REQUIRE(reader.error == Errc::ok);
  const pid_t sender = spawn([&] {
    SteadyClock c;
    SilentDoorbell b;
    auto me = Channel::attach(area.region(), config(policy), b, c);
    if (me.error != Errc::ok) return 10;
    for (std::uint64_t seq = 0; seq < 3; ++seq) {
      if (me.channel->send(message(seq, 40), 0) != Errc::ok) return 11;
    }
    me.channel->shutdown_send();
    pause(); // stays until killed, its records and its close in the area
    return 0;
  });
  await([&] { return area.word(128) == 2; }); // side 1 closed
  const std::uint64_t forged = 3 * 64 + 64;   // one record more than it wrote
  forge(area, 192 + 256, &forged, 8);         // direction[1].produced
  std::vector<std::byte> buf(256);
  std::size_t n = 0;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(reader.channel->recv(buf, n, 1'000 * kMs) == Errc::ok);
    CHECK(is_message(buf, n));
  }
  const auto t0 = Wall::now();
  CHECK(reader.channel->recv(buf, n, kForever) == Errc::protocol_violation);
  CHECK(Wall::now() - t0 < std::chrono::seconds(1));
  CHECK(reader.channel->error_detail().find("produced index 256") != std::string::npos);
  kill(sender, SIGKILL);
  CHECK(reap(sender, 5) == -SIGKILL);
}

TEST_CASE("a forged detach: its victim finds its own line overwritten, and the reader's stream "
          "ends in a violation, not an ordinary end",
          "[channel][hostile][processes]") {
  const auto policy = GENERATE(NotifyPolicy::polling, NotifyPolicy::on_demand);
  INFO("policy " << to_string(policy));
  SharedArea area;
  SilentDoorbell bell;
  SteadyClock clock;
  auto reader = Channel::create(area.region(), config(policy), bell, clock);
  REQUIRE(reader.error == Errc::ok);
  const pid_t sender = spawn([&] {
    SteadyClock c;
    SilentDoorbell b;
    auto me = Channel::attach(area.region(), config(policy), b, c);
    if (me.error != Errc::ok) return 10;
    const auto give_up = Wall::now() + std::chrono::seconds(5);
    for (std::uint64_t seq = 0; Wall::now() < give_up; ++seq) {
      me.channel->send(message(seq, 24), 10 * kMs); // a full ring only slows it down
      me.channel->heartbeat();                      // what the platform's ticker does
      if (me.channel->failure() == Errc::protocol_violation) {
        // Its own check, at its next heartbeat; or, if the reader was first to see the forged
        // close contradicted (a record after it), the reader's failed state.
        const std::string why = me.channel->error_detail();
        return why.find("own endpoint line was overwritten") != std::string::npos ||
                       why.find("side 0 found the shared area broken") != std::string::npos
                   ? 0
                   : 11;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return 12;
  });
  std::vector<std::byte> buf(256);
  std::size_t n = 0;
  for (int i = 0; i < 20; ++i) {
    REQUIRE(reader.channel->recv(buf, n, 1'000 * kMs) == Errc::ok);
    CHECK(is_message(buf, n));
  }
  const std::uint32_t detached = 3;
  forge(area, 128, &detached, 4); // side 1's state
  const auto t0 = Wall::now();
  Errc e = Errc::ok;
  int ordinary_ends = 0;
  while (Wall::now() - t0 < std::chrono::seconds(2)) {
    e = reader.channel->recv(buf, n, 100 * kMs);
    if (e == Errc::ok) {
      CHECK(is_message(buf, n));
      continue;
    }
    if (e == Errc::peer_closed) { // what the ring alone reads in a forged state: looked again
      ++ordinary_ends;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    break;
  }
  CHECK(e == Errc::protocol_violation);
  CHECK(Wall::now() - t0 < std::chrono::seconds(1));
  INFO("reader: " << reader.channel->error_detail() << "; ordinary ends seen first "
                  << ordinary_ends);
  CHECK(reap(sender, 5) == 0);
}

TEST_CASE("a checked channel: random payload bytes, a forged record or a spray are violations, "
          "never data",
          "[channel][hostile][processes][crc]") {
  const auto policy = GENERATE(NotifyPolicy::polling, NotifyPolicy::on_demand);
  const int attack = GENERATE(0, 1, 2);
  INFO("policy " << to_string(policy) << ", attack " << attack);
  SharedArea area;
  SilentDoorbell bell;
  SteadyClock clock;
  auto reader = Channel::create(area.region(), config(policy, true), bell, clock);
  REQUIRE(reader.error == Errc::ok);
  // The sender writes 4 messages of 100 bytes (records of 16 + 100, 8-aligned: 120 bytes).
  const pid_t sender = spawn([&] {
    SteadyClock c;
    SilentDoorbell b;
    auto me = Channel::attach(area.region(), config(policy, true), b, c);
    if (me.error != Errc::ok) return 10;
    for (std::uint64_t seq = 0; seq < 4; ++seq) {
      if (me.channel->send(message(seq, 100), 0) != Errc::ok) return 11;
    }
    pause();
    return 0;
  });
  await([&] { return area.word(192 + 256) == 4 * 120; });
  std::mt19937_64 random(static_cast<std::uint64_t>(attack) * 7 + 1);
  std::vector<std::uint8_t> noise(kRing);
  for (auto& b : noise) b = static_cast<std::uint8_t>(random());
  if (attack == 0) { // random bytes in the second record's payload
    forge(area, kRing1 + 120 + 16 + 30, noise.data(), 20);
  } else if (attack == 1) { // the second record replaced by a valid-looking one: right header
    const std::uint64_t header = wire::make_header(120, 100), check = 0x12345678;
    std::vector<std::byte> record(116);
    std::memcpy(record.data(), &header, 8);
    std::memcpy(record.data() + 8, &check, 8);
    std::memcpy(record.data() + 16, message(1, 100).data(), 100); // even its payload fits
    record[16 + 50] = std::byte{0x55};                            // but one byte differs
    forge(area, kRing1 + 120, record.data(), record.size());
  } else { // a spray over the whole ring, headers included
    forge(area, kRing1, noise.data(), noise.size());
  }
  std::vector<std::byte> buf(kRing);
  std::size_t n = 0;
  const auto t0 = Wall::now();
  Errc e = Errc::ok;
  int delivered = 0;
  while ((e = reader.channel->recv(buf, n, kForever)) == Errc::ok) {
    CHECK(is_message(buf, n)); // only what the sender sent
    ++delivered;
  }
  CHECK(e == Errc::protocol_violation);
  CHECK(Wall::now() - t0 < std::chrono::seconds(1));
  CHECK(delivered <= 1);
  kill(sender, SIGKILL);
  CHECK(reap(sender, 5) == -SIGKILL);
}
