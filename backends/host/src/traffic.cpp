// The host backend's workloads inside a VM process (traffic.hpp).
#include "traffic.hpp"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <random>

namespace ivmc::host {

namespace {

std::uint64_t mix(std::uint64_t x) { // splitmix64's finaliser: a cheap, well-spread pattern
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The pattern's 8-byte word `w` of message (pipe, index).
std::uint64_t pattern_word(std::uint32_t pipe, std::uint64_t index, std::size_t w) {
  return mix((std::uint64_t{pipe} << 48) ^ index) + w * 0x2545F4914F6CDD1Dull;
}

// Seeded, portable draws (the standard distributions are implementation-defined).
class Draws {
public:
  explicit Draws(std::uint64_t seed) : engine_(seed) {}
  double exponential(double rate) {
    const double u = static_cast<double>(engine_() >> 11) * 0x1.0p-53;
    return -std::log1p(-u) / rate;
  }

private:
  std::mt19937_64 engine_;
};

// What an idle sender watches (between paced messages, or while it waits for a response):
// a local path that broke, or a new view, re-decides the path now, as a membership
// subscription would, rather than at the next message (which may never come).
class IdleWatch {
public:
  IdleWatch(VmContext& vm, SenderEnd* tx) : vm_(vm), tx_(tx) {}
  void operator()() {
    if (tx_ == nullptr) return;
    tx_->maintain();
    const std::uint64_t version = vm_.board.view_version(vm_.self);
    FramePath* local = tx_->link().local_path();
    const bool view_changed = version != seen_ && vm_.link.race != RacePolicy::prevention;
    if ((local != nullptr && local->broken()) || view_changed) {
      seen_ = version;
      tx_->link().refresh();
    }
  }

private:
  VmContext& vm_;
  SenderEnd* tx_;
  std::uint64_t seen_ = 0;
};

constexpr Nanos kIdleSlice = 5'000'000; // how often an idle sender looks (see IdleWatch)

void sleep_until(Nanos t, const std::atomic<bool>& abort, IdleWatch* idle = nullptr) {
  for (;;) {
    // relaxed: a stop request; seen within one slice.
    if (abort.load(std::memory_order_relaxed)) return;
    if (idle != nullptr) (*idle)();
    const Nanos now = posix::MonotonicClock::read();
    if (now >= t) return;
    const Nanos until = std::min(t, now + (idle != nullptr ? kIdleSlice : 50'000'000));
    timespec ts{static_cast<time_t>(until / 1'000'000'000),
                static_cast<long>(until % 1'000'000'000)};
    ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
  }
}

bool measured(const RunWindow& w, Nanos t) {
  return t >= w.measure_from && t <= w.measure_to;
}

std::string describe(Errc e) {
  return std::string(to_string(e));
}

// Waits until both VMs exist; false when one of them is gone for good (it existed and left)
// or the stop time passed.
bool both_exist(VmContext& vm, VmId peer, Nanos stop, bool& existed,
                const std::atomic<bool>& abort) {
  for (;;) {
    const bool here = vm.board.host_of(vm.self).has_value();
    const bool there = vm.board.host_of(peer).has_value();
    if (here && there) {
      existed = true;
      return true;
    }
    // relaxed: a stop request.
    if (existed || abort.load(std::memory_order_relaxed)) return false;
    if (posix::MonotonicClock::read() >= stop) return false;
    sleep_until(posix::MonotonicClock::read() + 1'000'000, abort);
  }
}

// One checked receive; returns the link's outcome and fills `h` on a good message.
enum class Got { message, end, nothing, failed };
Got receive_one(ReceiverEnd& rx, std::vector<std::byte>& buffer, std::uint32_t pipe,
                const RunWindow& window, WorkResult& r, MessageHeader& h, std::uint64_t& expected,
                IdleWatch* idle = nullptr) {
  std::size_t length = 0;
  const std::uint64_t drained_before = rx.link().stats().drained_after_break;
  if (idle != nullptr) (*idle)();
  const Errc e = rx.link().recv(buffer, length, idle != nullptr ? kIdleSlice : 50'000'000);
  if (e == Errc::peer_closed) return Got::end;
  if (e == Errc::timed_out || e == Errc::would_block) {
    if (posix::MonotonicClock::read() > window.give_up) {
      r.finished = false;
      return Got::failed;
    }
    return Got::nothing;
  }
  if (e != Errc::ok) {
    r.error = "receive on pipe " + std::to_string(pipe) + ": " + describe(e);
    r.finished = false;
    return Got::failed;
  }
  if (rx.link().stats().drained_after_break != drained_before) r.recovered_bytes += length;
  if (!check_message(std::span(buffer.data(), length), pipe, h)) {
    ++r.corrupt;
    return Got::nothing;
  }
  if (h.index < expected) {
    ++r.reordered;
    return Got::nothing;
  }
  r.gaps += h.index - expected;
  expected = h.index + 1;
  ++r.delivered;
  return Got::message;
}

// Ends a sender's stream so that the receiver gets every message and the end: the end is
// sent, then, while the local path holds frames the receiver has not consumed, the sender
// waits; if that path breaks meanwhile, its frames and the end go again on the remote path.
bool end_stream(SenderEnd& tx, Nanos give_up) {
  tx.finished();
  tx.link().refresh();
  Errc e = tx.link().finish(5'000'000'000);
  for (;;) {
    FramePath* local = tx.link().local_path();
    Channel* channel = tx.local_channel();
    if (local == nullptr || channel == nullptr) return e == Errc::ok;
    if (local->broken()) {
      tx.link().refresh(); // falls back: pending frames re-sent remote
      return tx.link().finish(5'000'000'000) == Errc::ok;
    }
    if (channel->unconsumed_outgoing() == 0) return e == Errc::ok;
    if (posix::MonotonicClock::read() > give_up) return false;
    timespec ts{0, 1'000'000};
    ::nanosleep(&ts, nullptr);
  }
}

void stream_send(VmContext& vm, const WorkSpec& s, SenderEnd& tx, const RunWindow& window,
                 const std::atomic<bool>& abort, WorkResult& r) {
  std::vector<std::byte> buffer(s.bytes);
  Draws draws(s.seed);
  IdleWatch idle(vm, &tx);
  sleep_until(s.start, abort);
  Nanos next = s.start;
  bool existed = false;
  for (std::uint64_t k = 0;; ++k) {
    // relaxed: a stop request.
    if (abort.load(std::memory_order_relaxed)) break;
    Nanos created;
    if (s.rate > 0) {
      const double gap_s = s.poisson ? draws.exponential(s.rate) : (k == 0 ? 0 : 1.0 / s.rate);
      next += static_cast<Nanos>(std::llround(gap_s * 1e9));
      if (next >= s.stop) break;
      sleep_until(next, abort, &idle);
      created = next;
    } else {
      created = posix::MonotonicClock::read();
      if (created >= s.stop) break;
    }
    if (!vm.board.host_of(vm.self) || !vm.board.host_of(s.peer)) {
      if (!both_exist(vm, s.peer, s.stop, existed, abort)) break;
      next = posix::MonotonicClock::read(); // no backlog from the time a VM did not exist
      created = next;
    }
    existed = true;
    fill_message(buffer, {r.sent, created, s.tx_pipe, s.bytes});
    tx.maintain();
    const bool in_window = vm.board.race(vm.self, s.peer).has_value();
    const Errc e = tx.link().send(buffer, 10'000'000'000);
    if (e != Errc::ok) {
      r.error = "send on pipe " + std::to_string(s.tx_pipe) + ": " + describe(e);
      break;
    }
    ++r.sends;
    if (in_window) ++r.sends_in_window;
    ++r.sent;
  }
  r.finished = end_stream(tx, window.give_up);
}

void stream_recv(const WorkSpec& s, ReceiverEnd& rx, const RunWindow& window,
                 const std::atomic<bool>& abort, WorkResult& r) {
  std::vector<std::byte> buffer(std::max<std::size_t>(s.bytes, kMessageHeader));
  std::uint64_t expected = 0;
  // relaxed: a stop request.
  while (!abort.load(std::memory_order_relaxed)) {
    MessageHeader h;
    const Got g = receive_one(rx, buffer, s.rx_pipe, window, r, h, expected);
    if (g == Got::end || g == Got::failed) return;
    if (g != Got::message) continue;
    const Nanos now = posix::MonotonicClock::read();
    if (measured(window, now)) {
      ++r.measured_messages;
      r.measured_bytes += h.bytes;
      r.latency.record(now - h.created);
    }
  }
  r.finished = false;
}

void rr_client(VmContext& vm, const WorkSpec& s, SenderEnd& tx, ReceiverEnd& rx,
               const RunWindow& window, const std::atomic<bool>& abort, WorkResult& r) {
  std::vector<std::byte> request(s.bytes), response(std::max<std::size_t>(s.bytes, 64));
  std::uint64_t expected = 0;
  bool existed = false;
  IdleWatch idle(vm, &tx);
  sleep_until(s.start, abort);
  // relaxed: a stop request.
  while (!abort.load(std::memory_order_relaxed) && posix::MonotonicClock::read() < s.stop) {
    if (!both_exist(vm, s.peer, s.stop, existed, abort)) break;
    const Nanos created = posix::MonotonicClock::read();
    const std::uint64_t k = r.sent;
    fill_message(request, {k, created, s.tx_pipe, s.bytes});
    tx.maintain();
    const bool in_window = vm.board.race(vm.self, s.peer).has_value();
    const Errc e = tx.link().send(request, 10'000'000'000);
    if (e != Errc::ok) {
      r.error = "request on pipe " + std::to_string(s.tx_pipe) + ": " + describe(e);
      break;
    }
    ++r.sends;
    if (in_window) ++r.sends_in_window;
    ++r.sent;
    MessageHeader h;
    Got g = Got::nothing;
    // relaxed: a stop request.
    while (g == Got::nothing && !abort.load(std::memory_order_relaxed)) {
      g = receive_one(rx, response, s.rx_pipe, window, r, h, expected, &idle);
    }
    if (g != Got::message) {
      if (g == Got::end) r.error = "the server ended the responses early";
      r.finished = false;
      return;
    }
    if (h.index != k) continue; // a lost request's response never comes: counted as a gap
    const Nanos now = posix::MonotonicClock::read();
    if (measured(window, now)) {
      ++r.transactions;
      ++r.measured_messages;
      r.measured_bytes += h.bytes;
      r.latency.record(now - created);
    }
  }
  r.finished = end_stream(tx, window.give_up);
  // The server answers our end with its own.
  MessageHeader h;
  for (;;) {
    const Got g = receive_one(rx, response, s.rx_pipe, window, r, h, expected, &idle);
    if (g == Got::end) return;
    if (g == Got::failed) return;
    // relaxed: a stop request.
    if (abort.load(std::memory_order_relaxed)) return;
  }
}

void rr_server(VmContext& vm, const WorkSpec& s, ReceiverEnd& rx, SenderEnd& tx,
               const RunWindow& window, const std::atomic<bool>& abort, WorkResult& r) {
  std::vector<std::byte> request(std::max<std::size_t>(s.bytes, 64)), response(s.bytes);
  std::uint64_t expected = 0;
  IdleWatch idle(vm, &tx);
  // relaxed: a stop request.
  while (!abort.load(std::memory_order_relaxed)) {
    MessageHeader h;
    const Got g = receive_one(rx, request, s.rx_pipe, window, r, h, expected, &idle);
    if (g == Got::end) break;
    if (g == Got::failed) return;
    if (g != Got::message) continue;
    fill_message(response, {h.index, h.created, s.tx_pipe, s.bytes});
    tx.maintain();
    const bool in_window = vm.board.race(vm.self, s.peer).has_value();
    const Errc e = tx.link().send(response, 10'000'000'000);
    if (e != Errc::ok) {
      r.error = "response on pipe " + std::to_string(s.tx_pipe) + ": " + describe(e);
      r.finished = false;
      return;
    }
    ++r.sends;
    if (in_window) ++r.sends_in_window;
    ++r.sent;
  }
  r.finished = end_stream(tx, window.give_up);
}

} // namespace

// The header's last word: a digest of the rest and of the length, so that a damaged header is
// caught even in a message with no pattern bytes after it.
std::uint32_t header_check(std::uint64_t index, std::int64_t created, std::uint32_t pipe,
                           std::size_t length) {
  return static_cast<std::uint32_t>(
      mix(index ^ mix(static_cast<std::uint64_t>(created) ^ (std::uint64_t{pipe} << 32) ^ length)));
}

void fill_message(std::span<std::byte> out, const MessageHeader& h) {
  const std::uint32_t check = header_check(h.index, h.created, h.pipe, out.size());
  std::memcpy(out.data(), &h.index, 8);
  std::memcpy(out.data() + 8, &h.created, 8);
  std::memcpy(out.data() + 16, &h.pipe, 4);
  std::memcpy(out.data() + 20, &check, 4);
  std::size_t w = 0;
  std::size_t at = kMessageHeader;
  for (; at + 8 <= out.size(); at += 8, ++w) {
    const std::uint64_t word = pattern_word(h.pipe, h.index, w);
    std::memcpy(out.data() + at, &word, 8);
  }
  if (at < out.size()) {
    const std::uint64_t word = pattern_word(h.pipe, h.index, w);
    std::memcpy(out.data() + at, &word, out.size() - at);
  }
}

bool check_message(std::span<const std::byte> in, std::uint32_t pipe, MessageHeader& h) {
  if (in.size() < kMessageHeader) return false;
  std::uint32_t check = 0;
  std::memcpy(&h.index, in.data(), 8);
  std::memcpy(&h.created, in.data() + 8, 8);
  std::memcpy(&h.pipe, in.data() + 16, 4);
  std::memcpy(&check, in.data() + 20, 4);
  h.bytes = static_cast<std::uint32_t>(in.size());
  if (h.pipe != pipe || check != header_check(h.index, h.created, h.pipe, in.size())) return false;
  std::size_t w = 0;
  std::size_t at = kMessageHeader;
  for (; at + 8 <= in.size(); at += 8, ++w) {
    const std::uint64_t want = pattern_word(h.pipe, h.index, w);
    if (std::memcmp(in.data() + at, &want, 8) != 0) return false;
  }
  if (at < in.size()) {
    const std::uint64_t want = pattern_word(h.pipe, h.index, w);
    if (std::memcmp(in.data() + at, &want, in.size() - at) != 0) return false;
  }
  return true;
}

const char* to_string(Role r) {
  switch (r) {
  case Role::stream_send:
    return "stream_send";
  case Role::stream_recv:
    return "stream_recv";
  case Role::rr_client:
    return "rr_client";
  case Role::rr_server:
    return "rr_server";
  }
  return "?";
}

bool parse_role(std::string_view text, Role& out) {
  for (Role r : {Role::stream_send, Role::stream_recv, Role::rr_client, Role::rr_server}) {
    if (text == to_string(r)) {
      out = r;
      return true;
    }
  }
  return false;
}

void run_work(VmContext& vm, const WorkSpec& spec, SenderEnd* tx, ReceiverEnd* rx,
              const RunWindow& window, const std::atomic<bool>& abort, WorkResult& result) {
  try {
    switch (spec.role) {
    case Role::stream_send:
      stream_send(vm, spec, *tx, window, abort, result);
      break;
    case Role::stream_recv:
      stream_recv(spec, *rx, window, abort, result);
      break;
    case Role::rr_client:
      rr_client(vm, spec, *tx, *rx, window, abort, result);
      break;
    case Role::rr_server:
      rr_server(vm, spec, *rx, *tx, window, abort, result);
      break;
    }
  } catch (const std::exception& e) {
    result.error = e.what();
    result.finished = false;
  }
}

} // namespace ivmc::host
