// A checked stream over any platform's link: see include/ivmc/posix/link_stream.hpp.
// No fmt here: the statically linked guest agent uses this file.
#include "ivmc/posix/link_stream.hpp"

#include "ivmc/posix/clock.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace ivmc::posix {

std::string link_counters(const LinkStats& s) {
  char text[400];
  std::snprintf(
      text, sizeof text,
      " sent_local=%llu sent_remote=%llu to_local=%llu to_remote=%llu fallbacks=%llu "
      "resent=%llu deferred=%llu switch_max_ns=%lld switch_samples=%llu duplicates=%llu "
      "lost=%llu receiver_switches=%llu drained_after_break=%llu",
      static_cast<unsigned long long>(s.sent_local), static_cast<unsigned long long>(s.sent_remote),
      static_cast<unsigned long long>(s.switches_to_local),
      static_cast<unsigned long long>(s.switches_to_remote),
      static_cast<unsigned long long>(s.fallbacks), static_cast<unsigned long long>(s.resent),
      static_cast<unsigned long long>(s.deferred), static_cast<long long>(s.switch_ns_max),
      static_cast<unsigned long long>(s.switch_samples),
      static_cast<unsigned long long>(s.duplicates),
      static_cast<unsigned long long>(s.lost_messages),
      static_cast<unsigned long long>(s.receiver_switches),
      static_cast<unsigned long long>(s.drained_after_break));
  return text;
}

Report send_link_stream(LinkSender& sender, std::uint64_t limit, std::uint32_t message,
                        Nanos timeout,
                        const std::function<void(std::uint64_t, std::uint64_t&)>& before_send) {
  Report r;
  r.mode = "link-send";
  std::vector<std::byte> buffer(message);
  StreamChecksum sum;
  PathKind path = sender.path();
  while (r.bytes < limit) {
    if (before_send) before_send(r.bytes, limit);
    if (r.bytes >= limit) break;
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(message, limit - r.bytes));
    const std::span<std::byte> m(buffer.data(), n);
    fill_stream(r.bytes, m);
    if (const Errc e = sender.send(m, timeout); e != Errc::ok) {
      r.error = "link send: " + std::string(to_string(e));
      break;
    }
    if (sender.path() != path) {
      path = sender.path();
      std::printf("IVMC-LINK path %s after %llu bytes\n", std::string(to_string(path)).c_str(),
                  static_cast<unsigned long long>(r.bytes));
      std::fflush(stdout);
    }
    sum.update(m);
    r.bytes += n;
    ++r.messages;
  }
  r.checksum = sum.value();
  r.paths.frames_local = sender.stats().sent_local;
  r.paths.frames_remote = sender.stats().sent_remote;
  r.ok = r.error.empty();
  return r;
}

Report receive_link_stream(LinkReceiver& receiver, Nanos timeout,
                           std::vector<PathChange>* changes) {
  Report r;
  r.mode = "link-recv";
  std::vector<std::byte> buffer(16u << 20), expected;
  StreamChecksum sum;
  PathKind path = receiver.path();
  Nanos start = -1;
  for (;;) {
    std::size_t n = 0;
    const Errc e = receiver.recv(buffer, n, timeout);
    if (e == Errc::peer_closed) break;
    if (e != Errc::ok) {
      r.error = "link recv: " + std::string(to_string(e)) + " after " + std::to_string(r.bytes) +
                " bytes";
      break;
    }
    if (start < 0) start = MonotonicClock::read();
    if (receiver.path() != path) {
      path = receiver.path();
      if (changes) changes->push_back({MonotonicClock::read(), path, r.bytes});
    }
    // Every byte where it belongs: a loss, duplicate or reordering fails here, at its place.
    expected.resize(n);
    fill_stream(r.bytes, expected);
    if (std::memcmp(expected.data(), buffer.data(), n) != 0) {
      r.error = "message " + std::to_string(r.messages) + " (" + std::to_string(n) +
                " bytes at stream offset " + std::to_string(r.bytes) +
                ") is not the stream's next bytes";
      break;
    }
    sum.update(std::span(buffer.data(), n));
    r.bytes += n;
    ++r.messages;
  }
  r.elapsed = start < 0 ? 0 : MonotonicClock::read() - start;
  r.checksum = sum.value();
  r.extra = link_counters(receiver.stats());
  r.ok = r.error.empty();
  return r;
}

} // namespace ivmc::posix
