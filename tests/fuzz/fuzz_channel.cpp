// libFuzzer target: the peer is the fuzzer. It writes whatever it likes into the shared area,
// before attach and between our calls, and our endpoint must never crash, read or write out of
// bounds, hang, or hand the caller more than it asked for.
//
// Input: the policy, whether records carry a CRC32C, our side, then a stream of operations, each
// either a write into the area (offset, bytes; or a well-formed header or pad at a position of
// the ring we read, so that the fuzzer reaches the record checks behind the tag), a call on our
// endpoint (send, recv, reserve/commit, peek/release, close...), or the zeroed-header attack:
// every header of our incoming ring zeroed while the peer's produced index says they were
// published, after which a receive must end in protocol_violation, never in a wait. Every byte
// a zero-copy call hands out is read or written, so a span outside the area is caught by
// AddressSanitizer.
#include "ivmc/core/channel.hpp"

#include "../support/local_platform.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdlib>
#include <cstring>
#include <vector>

using namespace ivmc;

namespace {

constexpr std::uint32_t kRing = 512;

[[noreturn]] void invariant_broken(const char* what) {
  std::fprintf(stderr, "fuzz_channel: invariant broken: %s\n", what);
  std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const std::size_t area_size = Channel::area_bytes(kRing, kRing);
  test::AlignedArea area(area_size);
  std::memset(area.bytes, 0, area_size);
  test::NullDoorbell bell;
  test::ManualClock clock(1'000'000); // every reading advances 1 ms: waits always end

  ChannelConfig cfg;
  cfg.ring_bytes = kRing;
  cfg.notify.policy = static_cast<NotifyPolicy>(in.ConsumeIntegralInRange<int>(0, 4));
  cfg.record_crc32c = in.ConsumeBool();
  cfg.liveness.peer_timeout = 20'000'000;
  cfg.liveness.wait_slice = 1'000'000;

  const bool we_create = in.ConsumeBool();
  std::unique_ptr<Channel> ch, creator;
  if (we_create) {
    Opened o = Channel::create(area.region(), cfg, bell, clock);
    if (o.error != Errc::ok) invariant_broken("create failed on a valid config");
    ch = std::move(o.channel);
  } else {
    // The hostile creator lays out the area: start from a valid one, then let it scribble.
    creator = Channel::create(area.region(), cfg, bell, clock).channel; // then never used
    const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, 128);
    const auto bytes = in.ConsumeBytes<std::uint8_t>(n);
    const std::size_t at = in.ConsumeIntegralInRange<std::size_t>(0, 4096);
    if (!bytes.empty() && at + bytes.size() <= area_size)
      std::memcpy(area.bytes + at, bytes.data(), bytes.size());
    std::memset(area.bytes + 128, 0, 4); // side 1 must be free for us to attach at all
    Opened o = Channel::attach(area.region(), cfg, bell, clock);
    if (o.error == Errc::ok && !o.channel) invariant_broken("attach ok without a channel");
    if (o.error != Errc::ok) {
      if (o.detail.empty()) invariant_broken("attach failed without saying why");
      return 0;
    }
    ch = std::move(o.channel);
  }
  const std::uint32_t max_message = ch->max_message();
  if (max_message > kRing - 16) invariant_broken("max_message larger than the ring allows");

  const auto inside_area = [&](auto span) {
    const auto* b = reinterpret_cast<const std::byte*>(span.data());
    return span.empty() || (b >= area.bytes && b + span.size() <= area.bytes + area_size);
  };
  // The ring we consume, and its producer's index (direction[1 - side].produced).
  const int side = ch->side();
  std::byte* const incoming = area.bytes + 4096 + (side == 0 ? kRing : 0);
  const std::size_t produced_at = 192 + static_cast<std::size_t>(1 - side) * 256;
  std::vector<std::byte> buffer(kRing);
  bool violated = false, viewing = false, ended = false;
  std::uint64_t sink = 0;
  while (in.remaining_bytes() > 0) {
    switch (in.ConsumeIntegralInRange<int>(0, 11)) {
    case 10: { // the peer writes a well-formed header or pad (right tag) into the ring we read
      const std::uint64_t pos = in.ConsumeIntegralInRange<std::uint64_t>(0, 4 * kRing / 8) * 8;
      const std::uint32_t length =
          in.ConsumeBool() ? wire::kPadLength : in.ConsumeIntegralInRange<std::uint32_t>(0, kRing);
      const std::uint64_t header = wire::make_header(pos, length);
      std::memcpy(incoming + pos % kRing, &header, 8);
      if (in.ConsumeBool()) { // and a check word
        const std::uint64_t check = in.ConsumeIntegral<std::uint32_t>();
        std::memcpy(incoming + (pos + 8) % kRing, &check, 8);
      }
      break;
    }
    case 11: { // zeroed headers at published positions: detected, never waited for
      std::memset(incoming, 0, kRing);
      const std::uint64_t produced = std::uint64_t{1} << 62; // beyond any position we reached
      std::memcpy(area.bytes + produced_at, &produced, 8);
      const Errc before = ch->failure();
      std::size_t length = 0;
      const Errc e = ch->recv(buffer, length, 5'000'000);
      if (before == Errc::ok && !viewing && !ended && e != Errc::protocol_violation &&
          e != Errc::peer_dead) { // peer_dead: the fuzzer re-created the area (generation)
        std::fprintf(stderr, "recv returned %s\n", std::string(to_string(e)).c_str());
        invariant_broken("a zeroed header at a published position was not a violation");
      }
      if (e == Errc::protocol_violation) violated = true, viewing = false;
      if (e == Errc::peer_closed) ended = true;
      break;
    }
    case 0:
    case 1: { // the peer writes into the shared area (anywhere: control, indices, rings)
      const std::size_t at = in.ConsumeIntegralInRange<std::size_t>(0, area_size - 1);
      const auto bytes = in.ConsumeBytes<std::uint8_t>(
          in.ConsumeIntegralInRange<std::size_t>(1, std::min<std::size_t>(64, area_size - at)));
      if (!bytes.empty()) std::memcpy(area.bytes + at, bytes.data(), bytes.size());
      break;
    }
    case 2:
    case 3: { // we receive
      const std::size_t cap = in.ConsumeIntegralInRange<std::size_t>(0, buffer.size());
      std::size_t length = 0;
      const Nanos timeout = in.ConsumeBool() ? 0 : 5'000'000;
      const Errc e = ch->recv(std::span(buffer.data(), cap), length, timeout);
      if (e == Errc::ok && (length > cap || length > max_message)) {
        invariant_broken("recv returned more than the buffer or max_message");
      }
      if (e == Errc::buffer_too_small && length <= cap) {
        invariant_broken("buffer_too_small with a length that fits");
      }
      if (violated && e != Errc::protocol_violation) {
        invariant_broken("endpoint recovered from a protocol violation by itself");
      }
      if (e == Errc::misuse && !viewing) invariant_broken("recv misuse without a view");
      if (e == Errc::protocol_violation) {
        if (ch->error_detail().empty()) invariant_broken("violation without detail");
        violated = true;
        viewing = false; // no view outlives it
      }
      if (e == Errc::peer_closed) ended = true;
      break;
    }
    case 8: { // we receive in place, read every byte, and release (or keep the view)
      ReadableRecord record;
      const Errc e = ch->peek(record, in.ConsumeBool() ? 0 : 5'000'000);
      if (violated && e != Errc::protocol_violation) {
        invariant_broken("peek recovered from a protocol violation by itself");
      }
      if (e == Errc::ok) {
        if (record.size() > max_message) invariant_broken("peek returned more than max_message");
        if (!inside_area(record.first) || !inside_area(record.second)) {
          invariant_broken("peek returned bytes outside the area");
        }
        for (auto b : record.first) sink += static_cast<std::uint8_t>(b);
        for (auto b : record.second) sink += static_cast<std::uint8_t>(b);
        viewing = true;
        if (in.ConsumeBool()) {
          if (ch->release() == Errc::misuse) invariant_broken("release refused a view");
          viewing = false;
        }
      } else {
        viewing = false;
        if (e == Errc::protocol_violation) violated = true;
        if (e == Errc::peer_closed) ended = true;
      }
      break;
    }
    case 9: { // we send in place: reserve, write every byte, then commit (or abandon)
      const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, kRing);
      WritableRecord space;
      const Errc e = ch->reserve(n, space, in.ConsumeBool() ? 0 : 5'000'000);
      if (e == Errc::ok) {
        if (n > max_message) invariant_broken("reserved more than max_message");
        if (space.size() != n) invariant_broken("reserve handed out the wrong size");
        // A payload of 256 bytes or more is reserved in the ring; a smaller one is staged in
        // the endpoint (one span, off the area) until commit.
        const bool staged = n < wire::kAlignedPayloadMin;
        if (staged ? (!space.second.empty() || (!space.first.empty() && inside_area(space.first)))
                   : (!inside_area(space.first) || !inside_area(space.second))) {
          invariant_broken("reserve handed out space in the wrong place");
        }
        std::memset(space.first.data(), 0xcd, space.first.size());
        std::memset(space.second.data(), 0xcd, space.second.size());
        if (in.ConsumeBool() && ch->commit() == Errc::misuse) {
          invariant_broken("commit refused a reservation");
        }
      }
      break;
    }
    case 4:
    case 5: { // we send
      const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, kRing);
      std::vector<std::byte> msg(n, std::byte{0xab});
      const Errc e = ch->send(msg, in.ConsumeBool() ? 0 : 5'000'000);
      if (e == Errc::ok && n > max_message) invariant_broken("sent more than max_message");
      break;
    }
    case 6:
      ch->heartbeat();
      ch->flush();
      (void)ch->stats();
      (void)ch->unconsumed_outgoing();
      break;
    case 7:
      if (in.ConsumeBool()) {
        ch->shutdown_send();
      } else {
        ch->close(3'000'000);
        return 0;
      }
      break;
    }
  }
  asm volatile("" ::"r"(sink)); // the bytes were read
  return 0;
}
