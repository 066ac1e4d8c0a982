// The channel's data path, lifecycle and liveness: send, receive, notifications, waiting, the
// peer's state, closing. Setup (create, attach) is channel_setup.cpp. See wire.hpp for the
// layout and the record protocol, channel.hpp for the contract.
#include "channel_internal.hpp"

#include "ivmc/core/channel.hpp"
#include "ivmc/core/crc32c.hpp"

#include <algorithm>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace ivmc {

using namespace channel_detail;
using wire::ControlArea;
using wire::EndpointState;

// ---------------------------------------------------------------------------------------------
// Errors

Errc Channel::fail(Errc code, std::string detail) {
  {
    std::lock_guard lock(detail_mutex_);
    // The first failure wins, except that a violation found while draining a dead peer's
    // records (a close that does not match them, say) says more than that it died.
    const Errc existing = failure_.load(std::memory_order_relaxed); // under detail_mutex_
    if (existing != Errc::ok &&
        !(existing == Errc::peer_dead && code == Errc::protocol_violation)) {
      return existing;
    }
    detail_ = std::move(detail);
    failure_.store(code, std::memory_order_release); // detail_ is complete before the code
  }
  if (code == Errc::protocol_violation) {
    // Tell the peer, so that it does not wait for an endpoint that will never read or send
    // again (a zeroed header would otherwise leave both sides waiting, each heartbeating).
    set_own_state(EndpointState::failed);
    if (policy_ != NotifyPolicy::polling) {
      doorbell_.ring(Wake::data);
      doorbell_.ring(Wake::space);
    }
  }
  return code;
}

// Writes this endpoint's state into its line (never over failed: that stays), unless the area
// was re-created meanwhile (then the line is not ours).
void Channel::set_own_state(EndpointState state) {
  std::lock_guard lock(own_line_mutex_);
  if (own_state_ == static_cast<std::uint32_t>(EndpointState::failed)) return;
  if (shared(control_->identity.generation).load(std::memory_order_relaxed) !=
      geometry_.generation) { // relaxed: only compared
    return;
  }
  own_state_ = static_cast<std::uint32_t>(state);
  // Release: every record we published is visible before the peer sees the new state.
  shared(control_->endpoint[side_].state).store(own_state_, std::memory_order_release);
}

// Our endpoint line is written by us alone: if it holds something else, a third writer forged
// it (a `detached` that would end the peer's stream as if we had left, say).
void Channel::check_own_line() {
  std::uint32_t wrote = 0, found = 0;
  std::uint64_t address = 0;
  {
    std::lock_guard lock(own_line_mutex_);
    if (shared(control_->identity.generation).load(std::memory_order_relaxed) !=
        geometry_.generation) { // relaxed: only compared; a re-created area is checked elsewhere
      return;
    }
    wrote = own_state_;
    // Relaxed: our own fields; the mutex orders them against our own state changes.
    found = shared(control_->endpoint[side_].state).load(std::memory_order_relaxed);
    address = shared(control_->endpoint[side_].platform_address).load(std::memory_order_relaxed);
  }
  if (found != wrote || address != own_address_) {
    fail(Errc::protocol_violation,
         "side " + std::to_string(side_) +
             ": its own endpoint line was overwritten by another writer (state " +
             std::to_string(found) + ", platform address " + hex(address) +
             "; this endpoint wrote state " + std::to_string(wrote) + ", address " +
             hex(own_address_) + ")");
  }
}

std::string Channel::error_detail() const {
  std::lock_guard lock(detail_mutex_);
  return detail_;
}

// ---------------------------------------------------------------------------------------------
// The send path

// Not inlined into the one-buffer send() below, which takes it only off its fast path: that
// send() then needs no stack frame for the wait.
[[gnu::noinline]] Errc Channel::send(std::span<const std::byte> head,
                                     std::span<const std::byte> body, Nanos timeout) {
  if (tx_.reserved) { // the reservation holds the next record's place
    const Errc f = failure_.load(std::memory_order_acquire); // acquire: detail_ is readable
    if (f == Errc::ok) return Errc::misuse;
    tx_.reserved = false; // no reservation outlives a failure
    return f;
  }
  return transmit(head.size() + body.size(), timeout, [&] { return try_send(head, body); });
}

// What send() and reserve() share: the size check, one try, then waiting for space.
template <class Try>
Errc Channel::transmit(std::size_t length, Nanos timeout, Try try_once) {
  if (const Errc f = failure_.load(std::memory_order_acquire); f != Errc::ok) return f; // detail
  if (length > max_message_) {
    bump(tx_.too_large);
    return Errc::message_too_large;
  }
  const Errc first = try_once();
  if (first != Errc::would_block) return first;
  bump(tx_.ring_full);
  if (timeout == 0) return Errc::would_block;
  return wait_for(Wake::space, timeout, try_once, false);
}

// Writes the terminator and the payload of the record for tx_.position (header at `start`,
// ending at `end`). Store order: the lines after the header's first (terminator, payload), then
// the payload bytes that share the header's line. The consumer polls the header's line; writing
// it in one burst with the header (publish_record, next) takes that line from the consumer
// once, instead of once for the payload and again for the header after the other lines.
[[gnu::always_inline]] inline void Channel::write_payload(std::uint64_t start, std::uint64_t end,
                                                          std::uint32_t length,
                                                          std::span<const std::byte> head,
                                                          std::span<const std::byte> body) {
  auto* terminator = reinterpret_cast<std::uint64_t*>(tx_.data + (end & tx_.mask));
  shared(*terminator).store(0, std::memory_order_relaxed); // ordered by the header's release
  const std::uint64_t payload = wire::payload_position(tx_.position, length, prefix_);
  const std::uint64_t header_line_end = (start | (wire::kCacheLine - 1)) + 1;
  const std::uint64_t in_header_line =
      std::min<std::uint64_t>(length, header_line_end > payload ? header_line_end - payload : 0);
  copy_in_range(tx_.data, tx_.size, payload, head, body, in_header_line, length);
  copy_in_range(tx_.data, tx_.size, payload, head, body, 0, in_header_line);
}

// Publishes the record for tx_.position (header at `start`), whose payload and terminator are
// written, with its check word when the channel checks records, and moves on.
[[gnu::always_inline]] inline void Channel::publish_record(std::uint64_t start, std::uint64_t end,
                                                           std::uint32_t length,
                                                           std::uint64_t check) {
  auto* header = reinterpret_cast<std::uint64_t*>(tx_.data + (start & tx_.mask));
  if (checked_) {
    auto* word =
        reinterpret_cast<std::uint64_t*>(tx_.data + ((start + wire::kHeaderBytes) & tx_.mask));
    shared(*word).store(check, std::memory_order_relaxed); // ordered by the release below
  }
  if (start == tx_.position) [[likely]] {
    // Release: payload and terminator are visible before the header that announces them.
    shared(*header).store(wire::make_header(start, length), std::memory_order_release);
  } else {
    // Relaxed: the pad's release below publishes this header with the rest of the record.
    shared(*header).store(wire::make_header(start, length), std::memory_order_relaxed);
    auto* pad = reinterpret_cast<std::uint64_t*>(tx_.data + (tx_.position & tx_.mask));
    // Release: the record after the pad, header included, is visible before the pad.
    shared(*pad).store(wire::make_pad(tx_.position), std::memory_order_release);
  }
  tx_.position = end;
  // Release: the slow-path readers of `produced` (end of stream, stats) see complete records.
  shared(control_->direction[side_].produced.value).store(tx_.position, std::memory_order_release);
  bump(tx_.messages);
  bump(tx_.bytes, length);
  if (policy_ != NotifyPolicy::polling) notify_data_sent();
}

[[gnu::always_inline]] inline Errc Channel::try_send(std::span<const std::byte> head,
                                                     std::span<const std::byte> body) {
  if (send_shut_.load(std::memory_order_relaxed)) return Errc::closed;       // same-thread flag
  const auto length = static_cast<std::uint32_t>(head.size() + body.size()); // <= max_message_
  const std::uint64_t start = wire::record_start(tx_.position, length, prefix_);
  const std::uint64_t end = wire::record_end(tx_.position, length, prefix_);
  const std::uint64_t need = end - tx_.position + wire::kTerminatorBytes;
  // Room known from the last consumed index we read; otherwise read (and check) the peer's.
  if (tx_.position + need - tx_.cached_consumed > tx_.size) {
    if (const Errc room = tx_room(need); room != Errc::ok) return room;
  }
  write_payload(start, end, length, head, body);
  publish_record(start, end, length,
                 checked_ ? record_check(wire::make_header(start, length), head, body) : 0);
  return Errc::ok;
}

// The check word of a record: CRC32C of its header's 8 bytes, then its payload (head, body).
std::uint64_t Channel::record_check(std::uint64_t header, std::span<const std::byte> head,
                                    std::span<const std::byte> body) const {
  std::uint32_t crc = crc32c(0, &header, sizeof header); // little-endian hosts only (wire.hpp)
  crc = crc32c(crc, head.data(), head.size());
  return crc32c(crc, body.data(), body.size());
}

// ok if `need` bytes are free after tx_.position, would_block if not, or a violation.
Errc Channel::tx_room(std::uint64_t need) {
  if (tx_.position + need - tx_.cached_consumed <= tx_.size) return Errc::ok;
  // Acquire: the consumer finished reading the records before it published this index.
  const std::uint64_t consumed =
      shared(control_->direction[side_].consumed.value).load(std::memory_order_acquire);
  if (consumed < tx_.cached_consumed || consumed > tx_.position) {
    return fail(Errc::protocol_violation,
                "ring " + std::to_string(side_) + ": peer's consumed index " +
                    std::to_string(consumed) + " is outside [" +
                    std::to_string(tx_.cached_consumed) + ", " + std::to_string(tx_.position) +
                    "] (it may only grow, up to what was produced)");
  }
  if (consumed != tx_.cached_consumed) {
    peer_progressed_.store(true, std::memory_order_relaxed); // evidence of life, orders nothing
  }
  tx_.cached_consumed = consumed;
  return tx_.position + need - consumed <= tx_.size ? Errc::ok : Errc::would_block;
}

void Channel::notify_data_sent() {
  switch (policy_) {
  case NotifyPolicy::polling:
    return;
  case NotifyPolicy::per_packet:
    doorbell_.ring(Wake::data);
    counters_.data_notifications.fetch_add(1, std::memory_order_relaxed); // a count only
    return;
  case NotifyPolicy::on_demand:
  case NotifyPolicy::spin_then_block: {
    // Full fence: our header store is visible before we read the flag; the consumer sets the
    // flag and fences before re-checking the ring, so one of us sees the other (no lost wake-up).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    auto flag = shared(control_->direction[side_].data_wanted.value);
    // Relaxed: the fence above orders the load; exchange makes one ring per request.
    if (flag.load(std::memory_order_relaxed) != 0 &&
        flag.exchange(0, std::memory_order_relaxed) != 0) {
      doorbell_.ring(Wake::data);
      counters_.data_notifications.fetch_add(1, std::memory_order_relaxed); // a count only
    }
    return;
  }
  case NotifyPolicy::atw: {
    // Relaxed: a count shared with flush(); a race costs at most one spare ring.
    const std::uint32_t pending = unnotified_.fetch_add(1, std::memory_order_relaxed) + 1;
    const Nanos now = clock_.now();
    if (pending == 1) first_unnotified_.store(now, std::memory_order_relaxed); // paired w/ count
    const bool window_over =
        now - first_unnotified_.load(std::memory_order_relaxed) >= notify_.atw_window;
    if ((pending >= notify_.atw_batch || window_over) &&
        unnotified_.exchange(0, std::memory_order_relaxed) != 0) { // one ring per batch
      doorbell_.ring(Wake::data);
      counters_.data_notifications.fetch_add(1, std::memory_order_relaxed); // a count only
    }
    return;
  }
  }
}

void Channel::flush() {
  if (policy_ != NotifyPolicy::atw) return;
  if (unnotified_.load(std::memory_order_relaxed) == 0) return; // relaxed: a hint
  const Nanos now = clock_.now();
  if (now - first_unnotified_.load(std::memory_order_relaxed) < notify_.atw_window) return;
  // The receiver already took the whole batch (it was awake): a ring now would only wake it
  // for records written later, whose own window has not begun. Close the batch quietly.
  const bool taken = unconsumed_outgoing() == 0;
  if (unnotified_.exchange(0, std::memory_order_relaxed) != 0 && !taken) { // one ring per batch
    doorbell_.ring(Wake::data);
    counters_.data_notifications.fetch_add(1, std::memory_order_relaxed); // a count only
  }
}

// ---------------------------------------------------------------------------------------------
// The receive path

// Not inlined into the one-buffer recv(), as the general send() above.
[[gnu::noinline]] Errc Channel::recv(std::span<std::byte> head, std::span<std::byte> body,
                                     std::size_t& length, Nanos timeout) {
  if (rx_.viewing) { // the view holds the next record
    if (const Errc f = view_ending_failure(); f != Errc::ok) {
      rx_.viewing = false; // no view outlives a failure or close
      return f;
    }
    return Errc::misuse;
  }
  return receive(timeout, [&] { return try_recv(head, body, length); });
}

// What recv() and peek() share: failure and end-of-stream rules, one try, then waiting.
template <class Try>
Errc Channel::receive(Nanos timeout, Try try_once) {
  const Errc f = failure_.load(std::memory_order_acquire); // acquire: detail_ is readable
  // A dead or closed peer's complete records are still delivered; other failures stop here.
  if (f != Errc::ok && f != Errc::peer_dead && f != Errc::peer_closed) return f;
  if (rx_eof_.load(std::memory_order_relaxed)) return after_end_of_stream(); // own flag
  const Errc first = try_once();
  if (first != Errc::would_block) return first;
  if (f == Errc::peer_dead) return closed_before_death(try_once);
  if (f != Errc::ok) return f;
  if (timeout == 0) {
    const Errc e = peer_state_check(clock_.now(), Wake::data, Errc::would_block);
    return e == Errc::ok ? try_once() : e; // ok: a last record arrived meanwhile
  }
  const Errc waited =
      wait_for(Wake::data, timeout, try_once, policy_ == NotifyPolicy::spin_then_block);
  // The platform's notice of the departure may also come while we wait, before the wait has
  // looked at the peer's state.
  return waited == Errc::peer_dead ? closed_before_death(try_once) : waited;
}

// A peer that ended its stream in order and then went away (its process exited and the
// platform's notice came first) ended properly: report the end, not the death.
template <class Try>
Errc Channel::closed_before_death(Try try_once) {
  const std::uint32_t state =
      shared(control_->endpoint[1 - side_].state)
          .load(std::memory_order_acquire); // its records before its close are visible
  if (state != static_cast<std::uint32_t>(EndpointState::closed) &&
      state != static_cast<std::uint32_t>(EndpointState::detached)) {
    return Errc::peer_dead;
  }
  const Errc last = try_once(); // one may have landed before the close
  if (last != Errc::would_block) return last;
  if (const Errc e = closing_index_check(); e != Errc::ok) return e; // its index agrees
  return Errc::peer_closed;
}

// After the peer's end of stream: a peer that closed publishes nothing more, so a record after
// its close, or a `failed` state, says that the close was forged (or that the peer lies), and
// the stream cannot be trusted.
Errc Channel::after_end_of_stream() {
  auto* word = reinterpret_cast<std::uint64_t*>(rx_.data + (rx_.position & rx_.mask));
  const std::uint64_t header = shared(*word).load(std::memory_order_relaxed); // only compared
  const std::uint32_t state =
      shared(control_->endpoint[1 - side_].state).load(std::memory_order_relaxed); // compared
  if (header != 0) {
    return fail(Errc::protocol_violation,
                "ring " + std::to_string(1 - side_) + ": header " + hex(header) + " at position " +
                    std::to_string(rx_.position) +
                    " after the peer closed its sending side (a forged close, or records after "
                    "a close)");
  }
  if (state == static_cast<std::uint32_t>(EndpointState::failed)) {
    return fail(Errc::protocol_violation,
                "side " + std::to_string(1 - side_) +
                    " found the shared area broken after its close (state failed): the close "
                    "may have been forged");
  }
  return Errc::peer_closed;
}

// The header of the record at rx_.position, read once and validated: ok with its payload
// length, would_block if none is there yet, or a violation.
[[gnu::always_inline]] inline Errc Channel::next_record(std::uint32_t& length) {
  const std::uint64_t pos = rx_.position;
  auto* word = reinterpret_cast<std::uint64_t*>(rx_.data + (pos & rx_.mask));
  // Acquire: pairs with the producer's release of this header; the payload is visible.
  const std::uint64_t header = shared(*word).load(std::memory_order_acquire);
  if (header == 0) {
    // Nothing yet. Touch the line after the header's while we wait: the producer writes that
    // line before the header's, so a record reaching into it (a 64-byte message does) often
    // finds it here already when its header appears, and the copy does not wait for it.
    auto* second = reinterpret_cast<std::uint64_t*>(
        rx_.data + (((pos | (wire::kCacheLine - 1)) + 1) & rx_.mask));
    // Relaxed: only brings the line here; the copy reads it again after the header's acquire.
    const std::uint64_t touched = shared(*second).load(std::memory_order_relaxed);
    asm volatile("" ::"r"(touched)); // keep the load; its value is never used
    // Give the producer back all the space we used before we wait.
    if (rx_.published != pos) publish_consumed();
    return Errc::would_block;
  }
  std::uint32_t len = wire::header_length(header);
  // Every failed check goes to record_violation(), out of line: the checks stay a few compares.
  if (wire::header_tag_of(header) != wire::header_tag(pos)) [[unlikely]] {
    return record_violation(pos, header, 0);
  }
  if (len == wire::kPadLength) [[unlikely]] {
    // A pad: the small record it announces starts at the next line, written before the pad.
    const std::uint64_t start = wire::align_up(pos, wire::kCacheLine);
    auto* next = reinterpret_cast<std::uint64_t*>(rx_.data + (start & rx_.mask));
    // Relaxed: the pad's acquire above made the record after it visible.
    const std::uint64_t record = shared(*next).load(std::memory_order_relaxed);
    len = wire::header_length(record);
    if (start == pos || record == 0 || wire::header_tag_of(record) != wire::header_tag(start) ||
        len > max_message_ || wire::record_start(pos, len, prefix_) != start) {
      return record_violation(pos, header, record);
    }
  } else if (len > max_message_ || wire::record_start(pos, len, prefix_) != pos) [[unlikely]] {
    return record_violation(pos, header, 0);
  }
  length = len;
  return Errc::ok;
}

// What next_record() found wrong with `header` at `pos` (and, after a pad, the `record` it
// announced), as a violation naming ring, position and rule.
[[gnu::cold, gnu::noinline]] Errc Channel::record_violation(std::uint64_t pos, std::uint64_t header,
                                                            std::uint64_t record) {
  const std::uint32_t len = wire::header_length(header);
  std::string what;
  if (wire::header_tag_of(header) != wire::header_tag(pos)) {
    what = "tag " + hex(wire::header_tag_of(header)) + ", expected " + hex(wire::header_tag(pos));
  } else if (len == wire::kPadLength) {
    what = "a pad not followed by a small record that needs it (header " + hex(record) +
           " at position " + std::to_string(wire::align_up(pos, wire::kCacheLine)) + ")";
  } else if (len > max_message_) {
    what = "length " + std::to_string(len) + " exceeds max_message " + std::to_string(max_message_);
  } else {
    what = "a small record across a line boundary, where a pad belongs";
  }
  return fail(Errc::protocol_violation, "ring " + std::to_string(1 - side_) + ": header " +
                                            hex(header) + " at position " + std::to_string(pos) +
                                            " (offset " + std::to_string(pos & rx_.mask) +
                                            "): " + what);
}

// In a checked channel: the record for rx_.position (payload `length`) as copied out or viewed
// (`head` then `body`) must match its check word. Checking the copy the caller gets, not the
// ring, means that what is delivered is what was checked.
Errc Channel::check_record(std::uint32_t length, std::span<const std::byte> head,
                           std::span<const std::byte> body) {
  const std::uint64_t start = wire::record_start(rx_.position, length, prefix_);
  auto* word =
      reinterpret_cast<std::uint64_t*>(rx_.data + ((start + wire::kHeaderBytes) & rx_.mask));
  // Relaxed: written before the header (or pad) that the caller acquired.
  const std::uint64_t stored = shared(*word).load(std::memory_order_relaxed);
  const std::uint64_t computed = record_check(wire::make_header(start, length), head, body);
  if (stored == computed) [[likely]]
    return Errc::ok;
  return fail(Errc::protocol_violation, "ring " + std::to_string(1 - side_) +
                                            ": record at position " + std::to_string(start) +
                                            " (length " + std::to_string(length) +
                                            ") fails its check: check word " + hex(stored) +
                                            ", CRC32C of what arrived " + hex(computed));
}

// Moves past the record at rx_.position (payload `length`), read and done with.
[[gnu::always_inline]] inline void Channel::consume_record(std::uint32_t length) {
  const std::uint64_t position = wire::record_end(rx_.position, length, prefix_);
  rx_.position = position;
  bump(rx_.messages);
  bump(rx_.bytes, length);
  peer_progressed_.store(true, std::memory_order_relaxed); // evidence of life, orders nothing
  // Publish at least every publish_every bytes, and at once when we have caught up with the
  // producer: a receiver that stops calling recv() must not leave the sender without space
  // (or a close() waiting for a drain that already happened).
  auto* next = reinterpret_cast<std::uint64_t*>(rx_.data + (position & rx_.mask));
  if (position - rx_.published >= rx_.publish_every ||
      shared(*next).load(std::memory_order_relaxed) == 0) { // relaxed: a hint only
    publish_consumed();
  }
}

[[gnu::always_inline]] inline Errc
Channel::try_recv(std::span<std::byte> head, std::span<std::byte> body, std::size_t& length) {
  std::uint32_t len = 0;
  if (const Errc e = next_record(len); e != Errc::ok) return e;
  length = len;
  if (len > head.size() + body.size()) return Errc::buffer_too_small;
  const std::uint64_t payload = wire::payload_position(rx_.position, len, prefix_);
  const std::uint64_t in_head = std::min<std::uint64_t>(len, head.size());
  copy_out(rx_.data, rx_.size, payload, head.data(), in_head);
  copy_out(rx_.data, rx_.size, payload + in_head, body.data(), len - in_head);
  if (checked_) {
    const Errc e = check_record(len, head.first(in_head), body.first(len - in_head));
    if (e != Errc::ok) return e;
  }
  consume_record(len);
  return Errc::ok;
}

// ---------------------------------------------------------------------------------------------
// One message in one buffer: the common case, in one step where it can be

// A healthy channel with room for the message sends it here, with the same record and the same
// stores as the general path, which everything else takes (a reservation, a failure, a message
// too large, a full ring). The layers of the general path (its wait, its head/body split) cost
// a 64-byte round trip about a third of its time (BENCHMARKS.md, issue 18).
Errc Channel::send(std::span<const std::byte> message, Nanos timeout) {
  // Acquire: as transmit()'s, a failure's detail is readable on the general path it sends us to.
  if (!tx_.reserved && message.size() <= max_message_ &&
      failure_.load(std::memory_order_acquire) == Errc::ok) [[likely]] {
    const Errc e = try_send(message.first(0), message); // no head (not a null one)
    if (e != Errc::would_block) return e;
  }
  return send({}, message, timeout);
}

// A record already there, or one that arrives within a few hundred polls of a polling receiver,
// is taken here, validated as the general path validates it; everything else (waiting longer,
// end of stream, a failure, a view outstanding) goes to the general path.
Errc Channel::recv(std::span<std::byte> buffer, std::size_t& length, Nanos timeout) {
  // Acquire: as receive()'s.
  if (!rx_.viewing && !rx_eof_.load(std::memory_order_relaxed) &&
      failure_.load(std::memory_order_acquire) == Errc::ok) [[likely]] {
    // The polls the general wait makes before it first reads the clock, made here without its
    // bookkeeping; a channel that sleeps at once (on_demand) or a caller that does not wait
    // tries once.
    const bool spin =
        timeout != 0 && (policy_ == NotifyPolicy::polling ||
                         (policy_ == NotifyPolicy::spin_then_block && notify_.spin_budget > 0));
    const std::uint32_t polls = spin ? 256 : 1;
    for (std::uint32_t i = 1;; ++i) {
      const Errc e = try_recv(buffer.first(0), buffer, length); // no head (not a null one)
      if (e != Errc::would_block) return e;
      if (i == polls) break;
      cpu_relax();
    }
  }
  return recv({}, buffer, length, timeout);
}

// ---------------------------------------------------------------------------------------------
// Zero-copy send and receive: the same records, written or read in place

namespace {

template <class Byte>
RingSpans<Byte> spans_at(Byte* ring, std::uint64_t size, std::uint64_t position,
                         std::uint32_t length) {
  const std::uint64_t off = position & (size - 1);
  const std::uint64_t first = std::min<std::uint64_t>(length, size - off);
  return {{ring + off, first}, {ring, length - first}};
}

} // namespace

Errc Channel::reserve(std::size_t length, WritableRecord& space, Nanos timeout) {
  tx_.reserved = false; // a new reservation replaces an outstanding one
  return transmit(length, timeout,
                  [&] { return try_reserve(static_cast<std::uint32_t>(length), space); });
}

Errc Channel::try_reserve(std::uint32_t length, WritableRecord& space) {
  if (send_shut_.load(std::memory_order_relaxed)) return Errc::closed; // same-thread flag
  const std::uint64_t pos = tx_.position;
  const std::uint64_t end = wire::record_end(pos, length, prefix_);
  if (const Errc room = tx_room(end - pos + wire::kTerminatorBytes); room != Errc::ok) return room;
  tx_.reserved = true;
  tx_.reserved_length = length;
  if (length < wire::kAlignedPayloadMin) {
    // A small payload shares the header's line, which the consumer polls: written there by
    // the caller at its own pace, that line would cross to the consumer and back for every
    // write. It is staged here instead and written in one burst with the header, as send()
    // writes it.
    // (The empty second span still points somewhere: memcpy must never see a null pointer.)
    space = {{tx_.staging, length}, {tx_.staging + length, 0}};
    return Errc::ok;
  }
  // A payload of kAlignedPayloadMin or more starts on a line of its own: the caller writes it
  // in place. The terminator first, as send() writes it; the caller writes only the payload.
  auto* terminator = reinterpret_cast<std::uint64_t*>(tx_.data + (end & tx_.mask));
  shared(*terminator).store(0, std::memory_order_relaxed); // ordered by commit()'s release
  space = spans_at(tx_.data, tx_.size, wire::payload_position(pos, length, prefix_), length);
  return Errc::ok;
}

Errc Channel::commit() {
  if (!tx_.reserved) return Errc::misuse;
  tx_.reserved = false;
  if (const Errc f = failure_.load(std::memory_order_acquire); f != Errc::ok) return f; // detail
  if (send_shut_.load(std::memory_order_relaxed)) return Errc::closed; // same-thread flag
  const std::uint32_t length = tx_.reserved_length;
  const std::uint64_t start = wire::record_start(tx_.position, length, prefix_);
  const std::uint64_t end = wire::record_end(tx_.position, length, prefix_);
  std::uint64_t check = 0;
  if (length < wire::kAlignedPayloadMin) {
    const std::span<const std::byte> staged{tx_.staging, length};
    write_payload(start, end, length, staged, {});
    if (checked_) check = record_check(wire::make_header(start, length), staged, {});
  } else if (checked_) { // written in place: checked as it lies in the ring
    const auto in_ring = spans_at<const std::byte>(
        tx_.data, tx_.size, wire::payload_position(tx_.position, length, prefix_), length);
    check = record_check(wire::make_header(start, length), in_ring.first, in_ring.second);
  }
  publish_record(start, end, length, check);
  return Errc::ok;
}

// The failure that ends a view, or ok: a dead or closed peer's complete records stay valid to
// the end; any other failure (a violation, our own close) ends them.
Errc Channel::view_ending_failure() const {
  const Errc f = failure_.load(std::memory_order_acquire); // acquire: detail_ is readable
  return f == Errc::peer_dead || f == Errc::peer_closed ? Errc::ok : f;
}

Errc Channel::peek(ReadableRecord& record, Nanos timeout) {
  if (rx_.viewing) {
    if (const Errc f = view_ending_failure(); f != Errc::ok) {
      rx_.viewing = false; // no view outlives this endpoint's failure or close
      return f;
    }
    record = spans_at<const std::byte>(
        rx_.data, rx_.size, wire::payload_position(rx_.position, rx_.view_length, prefix_),
        rx_.view_length);
    return Errc::ok;
  }
  return receive(timeout, [&] { return try_peek(record); });
}

Errc Channel::try_peek(ReadableRecord& record) {
  std::uint32_t len = 0;
  if (const Errc e = next_record(len); e != Errc::ok) return e;
  record = spans_at<const std::byte>(rx_.data, rx_.size,
                                     wire::payload_position(rx_.position, len, prefix_), len);
  // Checked once, in the ring: the bytes stay where the peer can write them (see peek()).
  if (checked_) {
    if (const Errc e = check_record(len, record.first, record.second); e != Errc::ok) return e;
  }
  rx_.viewing = true;
  rx_.view_length = len;
  return Errc::ok;
}

Errc Channel::release() {
  if (!rx_.viewing) return Errc::misuse;
  rx_.viewing = false;
  if (const Errc f = view_ending_failure(); f != Errc::ok) return f;
  consume_record(rx_.view_length);
  return Errc::ok;
}

// Inline: a polling receiver publishes after nearly every record of a round trip.
[[gnu::always_inline]] inline void Channel::publish_consumed() {
  const std::uint64_t position = rx_.position;
  rx_.published = position;
  // Release: our copies out of the ring are complete before the producer may overwrite them.
  shared(control_->direction[1 - side_].consumed.value).store(position, std::memory_order_release);
  if (policy_ != NotifyPolicy::polling) wake_space_waiter();
}

// After a publication under a sleeping policy: rings a producer that asked for space.
void Channel::wake_space_waiter() {
  const int dir = 1 - side_;
  // Full fence: the index is visible before we read the producer's flag (it sets the flag and
  // fences before re-reading the index), so a producer waiting for space is never missed.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  auto flag = shared(control_->direction[dir].space_wanted.value);
  if (flag.load(std::memory_order_relaxed) != 0 &&        // relaxed: ordered by the fence above
      flag.exchange(0, std::memory_order_relaxed) != 0) { // one ring per request
    doorbell_.ring(Wake::space);
    counters_.space_notifications.fetch_add(1, std::memory_order_relaxed); // a count only
  }
}

// ---------------------------------------------------------------------------------------------
// Wake-up requests, shared by the blocking waits and request_wake()

// Whether the peer rings for `reason` only when asked through the request flag: data under
// on_demand and spin_then_block, space under every sleeping policy.
bool Channel::rings_on_request(Wake reason) const {
  return reason == Wake::space || policy_ == NotifyPolicy::on_demand ||
         policy_ == NotifyPolicy::spin_then_block;
}

std::atomic_ref<std::uint32_t> Channel::request_flag(Wake reason) {
  return shared(reason == Wake::data ? control_->direction[1 - side_].data_wanted.value
                                     : control_->direction[side_].space_wanted.value);
}

// ---------------------------------------------------------------------------------------------
// Event-loop readiness

bool Channel::can_send(std::size_t message_bytes) {
  if (failure_.load(std::memory_order_relaxed) != Errc::ok) return false; // relaxed: a snapshot
  if (message_bytes > max_message_) return false;
  const auto length = static_cast<std::uint32_t>(message_bytes);
  const std::uint64_t need =
      wire::record_end(tx_.position, length, prefix_) - tx_.position + wire::kTerminatorBytes;
  return tx_room(need) == Errc::ok;
}

Errc Channel::request_wake(Wake reason, std::size_t message_bytes) {
  const auto ready = [&] {
    if (failure_.load(std::memory_order_relaxed) != Errc::ok) return true; // relaxed: snapshot
    if (reason == Wake::space) return can_send(message_bytes);
    const std::uint64_t pos = rx_.position;
    auto* word = reinterpret_cast<std::uint64_t*>(rx_.data + (pos & rx_.mask));
    // Relaxed: a peek; recv() re-reads the header with acquire before using the record.
    return shared(*word).load(std::memory_order_relaxed) != 0;
  };
  if (ready()) return Errc::ok;
  if (reason == Wake::data && rx_.published != rx_.position) {
    publish_consumed(); // as a blocking wait does: the producer gets its space back first
  }
  if (policy_ == NotifyPolicy::polling) return Errc::would_block; // nobody rings
  if (!rings_on_request(reason)) return Errc::would_block;        // per_packet and atw ring anyway
  auto flag = request_flag(reason);
  // seq_cst exchange is a full fence: the flag is visible before the re-check below.
  flag.exchange(1, std::memory_order_seq_cst);
  if (ready()) {
    flag.store(0, std::memory_order_relaxed); // relaxed: only spares the peer a ring
    return Errc::ok;
  }
  return Errc::would_block;
}

// ---------------------------------------------------------------------------------------------
// Waiting, liveness and teardown

Nanos Channel::deadline_after(Nanos timeout) {
  return timeout == kForever ? kForever : saturating_add(clock_.now(), timeout);
}

template <class Ready>
Errc Channel::wait_for(Wake reason, Nanos timeout, Ready ready, bool spin_first) {
  const bool sleeps = policy_ != NotifyPolicy::polling;
  const bool use_flag = sleeps && rings_on_request(reason);
  auto flag = request_flag(reason);
  // The clock is read lazily: a poller that finds its message within 256 polls never pays
  // for it (a clock read costs about as much as a cache-line transfer here).
  Nanos deadline = -1, spin_until = -1;
  bool spinning = !sleeps || spin_first;
  std::uint32_t polls = 0;
  for (;;) {
    if (const Errc r = ready(); r != Errc::would_block) return r;
    if (spinning && (++polls & 255u) != 0) { // look at the clock every 256 polls only
      cpu_relax();
      continue;
    }
    const Nanos now = clock_.now();
    if (deadline < 0) {
      deadline = timeout == kForever ? kForever : saturating_add(now, timeout);
      spin_until =
          !sleeps ? kForever : (spin_first ? saturating_add(now, notify_.spin_budget) : now);
    }
    // Acquire: a failure another thread recorded while we wait (the platform's
    // mark_peer_dead from its ticker) ends the wait, with its detail readable.
    Errc e = failure_.load(std::memory_order_acquire);
    if (e == Errc::ok) e = peer_state_check(now, reason, Errc::ok);
    if (e != Errc::ok) {
      if (e == Errc::peer_closed || e == Errc::peer_dead) {
        if (const Errc r = ready(); r != Errc::would_block) return r; // deliver what is left
      }
      return e;
    }
    if (now >= deadline) return Errc::timed_out;
    spinning = now < spin_until;
    if (spinning) {
      polls = 1;
      cpu_relax();
      continue;
    }
    // Rings so far announced what the re-check below sees; a ring after this one is kept.
    doorbell_.clear(reason);
    if (use_flag) {
      // seq_cst exchange is a full fence: the flag is visible before the re-check below.
      flag.exchange(1, std::memory_order_seq_cst);
    }
    if (const Errc r = ready(); r != Errc::would_block) {
      if (use_flag) flag.store(0, std::memory_order_relaxed); // no ring needed after all
      return r;
    }
    counters_.sleeps.fetch_add(1, std::memory_order_relaxed); // a count
    const Nanos slice = std::min(deadline - now, liveness_.wait_slice);
    switch (doorbell_.wait_uncleared(reason, slice)) {
    case WaitResult::rung:
      counters_.wakeups.fetch_add(1, std::memory_order_relaxed);
      break;
    case WaitResult::timed_out:
      counters_.wait_timeouts.fetch_add(1, std::memory_order_relaxed); // a count
      break;
    case WaitResult::failed:
      return fail(Errc::doorbell_failed, "side " + std::to_string(side_) +
                                             ": the platform doorbell failed while waiting for " +
                                             (reason == Wake::data ? "data" : "space"));
    }
  }
}

// Looks at the peer's endpoint line: end of stream, departure, heartbeat. Returns `otherwise`
// when nothing ends the wait. Also keeps our own heartbeat going while we wait.
Errc Channel::peer_state_check(Nanos now, Wake reason, Errc otherwise) {
  if (now - last_own_heartbeat_.load(std::memory_order_relaxed) >= liveness_.heartbeat_period) {
    heartbeat(); // relaxed pacing: an extra beat is harmless
  }
  const auto& peer = control_->endpoint[1 - side_];
  // Acquire: records the peer published before changing state are visible to us.
  const std::uint32_t state =
      shared(const_cast<std::uint32_t&>(peer.state)).load(std::memory_order_acquire);
  if (state > static_cast<std::uint32_t>(EndpointState::failed)) {
    return fail(Errc::protocol_violation, "side " + std::to_string(1 - side_) + " endpoint state " +
                                              std::to_string(state) + " is not a valid state");
  }
  const std::uint64_t generation =
      shared(control_->identity.generation).load(std::memory_order_relaxed); // compared only
  if (generation != geometry_.generation) {
    return fail(Errc::peer_dead, "the channel area was re-created (generation " +
                                     std::to_string(geometry_.generation) + " -> " +
                                     std::to_string(generation) + ")");
  }
  if (const Errc e = peer_state_order(state); e != Errc::ok) return e;
  if (reason == Wake::data && !rx_.viewing) {
    if (const Errc e = published_but_empty(); e != Errc::ok) return e;
  }
  const auto st = static_cast<EndpointState>(state);
  if (st == EndpointState::absent) {
    if (peer_was_live_.load(std::memory_order_relaxed)) { // relaxed: a one-way latch
      return fail(Errc::peer_dead, "side " + std::to_string(1 - side_) +
                                       " endpoint was reset to absent after being live");
    }
    peer_heartbeat_changed_at_.store(now, std::memory_order_relaxed); // timeout runs from attach
    return otherwise;
  }
  if (!peer_was_live_.exchange(true, std::memory_order_relaxed) && admit_ && // a one-way latch
      !admit_(peer_platform_address())) {
    return fail(Errc::refused, "the peer (platform address " + hex(peer_platform_address()) +
                                   ") is not in this endpoint's trust list");
  }
  if (st == EndpointState::closed || st == EndpointState::detached) {
    if (reason == Wake::data) return end_of_stream();
    if (st == EndpointState::detached) {
      return fail(Errc::peer_closed,
                  "side " + std::to_string(1 - side_) + " detached: it reads no more");
    }
  }
  const std::uint64_t beat =
      shared(const_cast<std::uint64_t&>(peer.heartbeat)).load(std::memory_order_relaxed);
  // A peer is alive while it beats or moves the ring; dead when it did neither for a timeout.
  const bool progressed = peer_progressed_.exchange(false, std::memory_order_relaxed); // a hint
  if (progressed || beat != seen_peer_heartbeat_.load(std::memory_order_relaxed)) {
    seen_peer_heartbeat_.store(beat, std::memory_order_relaxed); // relaxed: local hint
    peer_heartbeat_changed_at_.store(now, std::memory_order_relaxed);
  } else if (now - peer_heartbeat_changed_at_.load(std::memory_order_relaxed) >
             liveness_.peer_timeout) {
    return fail(Errc::peer_dead, "side " + std::to_string(1 - side_) + " heartbeat stood at " +
                                     std::to_string(beat) + " for more than " +
                                     std::to_string(liveness_.peer_timeout / 1'000'000) + " ms");
  }
  return otherwise;
}

// The peer's state moves only forward (wire.hpp): a state that goes back (closed or detached to
// live, detached to closed) was forged, now or before. A peer that says it failed ends us too.
Errc Channel::peer_state_order(std::uint32_t state) {
  const auto failed = static_cast<std::uint32_t>(EndpointState::failed);
  if (state == failed) {
    return fail(Errc::protocol_violation,
                "side " + std::to_string(1 - side_) +
                    " found the shared area broken and left the channel (its state is failed)");
  }
  // Relaxed: read and written by the thread that checks, a hint between checks.
  const std::uint32_t seen = peer_state_seen_.load(std::memory_order_relaxed);
  if (state > seen) peer_state_seen_.store(state, std::memory_order_relaxed); // a hint, as above
  // absent after live is a reset, reported by the caller as a departure (peer_dead).
  if (state < seen && state != static_cast<std::uint32_t>(EndpointState::absent)) {
    return fail(Errc::protocol_violation, "side " + std::to_string(1 - side_) + " endpoint state " +
                                              std::to_string(state) + " after " +
                                              std::to_string(seen) +
                                              ": states only move forward (a forged state)");
  }
  return Errc::ok;
}

// Called while waiting for data: is the record at our position published but its header empty?
// An honest producer stores a header (release) before the produced index past it (release), so
// once we acquire such an index the header must be there: nothing to wait for, no bound needed
// (a zeroed header at our position would otherwise leave both sides waiting forever). The index
// is read first and the header after it, so a record published in between is not mistaken.
Errc Channel::published_but_empty() {
  const std::uint64_t produced = shared(control_->direction[1 - side_].produced.value)
                                     .load(std::memory_order_acquire); // then the header below
  if (produced <= rx_.position) return Errc::ok; // nothing published here yet (or a stale index)
  auto* word = reinterpret_cast<std::uint64_t*>(rx_.data + (rx_.position & rx_.mask));
  // Acquire: pairs with the header's release, which came before the index's.
  if (shared(*word).load(std::memory_order_acquire) != 0) return Errc::ok;
  return fail(Errc::protocol_violation, "ring " + std::to_string(1 - side_) +
                                            ": header at position " + std::to_string(rx_.position) +
                                            " (offset " + std::to_string(rx_.position & rx_.mask) +
                                            ") is 0, but the peer's produced index " +
                                            std::to_string(produced) +
                                            " says it was published (a zeroed header)");
}

// The peer closed (state acquired) and no record is left at our position: its produced index
// must be where its records end, or the close does not match what it wrote.
Errc Channel::closing_index_check() {
  const std::uint64_t produced = shared(control_->direction[1 - side_].produced.value)
                                     .load(std::memory_order_acquire); // after the state
  if (produced == rx_.position) return Errc::ok;
  return fail(Errc::protocol_violation, "ring " + std::to_string(1 - side_) +
                                            ": peer closed with produced index " +
                                            std::to_string(produced) + " but its records end at " +
                                            std::to_string(rx_.position));
}

// The peer shut its sending side (state acquired). Deliver the rest, then say so.
Errc Channel::end_of_stream() {
  auto* word = reinterpret_cast<std::uint64_t*>(rx_.data + (rx_.position & rx_.mask));
  // Acquire: a record the peer published before closing is seen here, if still unread.
  if (shared(*word).load(std::memory_order_acquire) != 0) return Errc::ok; // caller reads it
  if (const Errc e = closing_index_check(); e != Errc::ok) return e;
  if (rx_.published != rx_.position) publish_consumed();
  // Not a failure of the endpoint: the peer may still read what we send (a half-close).
  rx_eof_.store(true, std::memory_order_relaxed); // read by the receiving thread only
  return Errc::peer_closed;
}

void Channel::heartbeat() {
  // Relaxed: the value only has to change; it orders nothing.
  shared(control_->endpoint[side_].heartbeat).fetch_add(1, std::memory_order_relaxed);
  last_own_heartbeat_.store(clock_.now(), std::memory_order_relaxed); // pacing only
  check_own_line(); // the platform's ticker calls us: a forged state is found while idle too
}

void Channel::mark_peer_dead(std::string_view why) {
  fail(Errc::peer_dead, "side " + std::to_string(1 - side_) + " is gone: " + std::string(why));
}

Errc Channel::wait_for_peer(Nanos timeout) {
  const Nanos deadline = deadline_after(timeout);
  auto& state = control_->endpoint[1 - side_].state;
  for (std::uint32_t polls = 0;; ++polls) {
    // Acquire: the peer's platform address is visible once it is live.
    if (shared(state).load(std::memory_order_acquire) !=
        static_cast<std::uint32_t>(EndpointState::absent)) {
      const std::uint64_t peer = peer_platform_address();
      if (admit_ && !admit_(peer)) {
        return fail(Errc::refused, "the attacher (platform address " + hex(peer) +
                                       ") is not in this endpoint's trust list");
      }
      return Errc::ok;
    }
    if (const Errc f = failure_.load(std::memory_order_acquire); f != Errc::ok) return f;
    const Nanos now = clock_.now();
    if (now >= deadline) return Errc::timed_out;
    if (policy_ == NotifyPolicy::polling) {
      cpu_relax();
    } else { // attach() rings us; the slice bounds the wait if that ring went nowhere
      doorbell_.wait(Wake::data, std::min(deadline - now, liveness_.wait_slice));
    }
  }
}

std::uint64_t Channel::peer_platform_address() const {
  // Relaxed: stable once the peer is live, which the caller established with acquire.
  return shared(const_cast<std::uint64_t&>(control_->endpoint[1 - side_].platform_address))
      .load(std::memory_order_relaxed);
}

bool Channel::peer_live() const {
  const std::uint32_t state =
      shared(const_cast<std::uint32_t&>(control_->endpoint[1 - side_].state))
          .load(std::memory_order_acquire); // a snapshot
  return state == static_cast<std::uint32_t>(EndpointState::live) &&
         failure_.load(std::memory_order_relaxed) == Errc::ok; // relaxed: a snapshot
}

bool Channel::peer_detached() const {
  const std::uint32_t state =
      shared(const_cast<std::uint32_t&>(control_->endpoint[1 - side_].state))
          .load(std::memory_order_acquire); // a snapshot
  return state == static_cast<std::uint32_t>(EndpointState::detached);
}

std::uint64_t Channel::unconsumed_outgoing() const {
  const std::uint64_t consumed =
      shared(const_cast<std::uint64_t&>(control_->direction[side_].consumed.value))
          .load(std::memory_order_acquire); // a snapshot of the peer's progress
  const std::uint64_t produced =
      shared(const_cast<std::uint64_t&>(control_->direction[side_].produced.value))
          .load(std::memory_order_relaxed); // our own index
  return consumed <= produced ? produced - consumed : 0;
}

Errc Channel::read_back_unconsumed(const std::function<bool(std::span<const std::byte>)>& visit) {
  // Relaxed: only this (sending) thread writes the records we read back; the peer's index is
  // a hint, checked below.
  std::uint64_t pos =
      shared(control_->direction[side_].consumed.value).load(std::memory_order_relaxed);
  if (pos < tx_.cached_consumed || pos > tx_.position) pos = tx_.cached_consumed;
  std::vector<std::byte> record;
  while (pos < tx_.position) {
    auto* word = reinterpret_cast<std::uint64_t*>(tx_.data + (pos & tx_.mask));
    // Relaxed: a copy taken once, then checked; the record is ours unless someone scribbled.
    const std::uint64_t header = shared(*word).load(std::memory_order_relaxed);
    if (header == wire::make_pad(pos) && pos % wire::kCacheLine != 0) { // our pad: skip it
      pos = wire::align_up(pos, wire::kCacheLine);
      continue;
    }
    const std::uint32_t len = wire::header_length(header);
    if (wire::header_tag_of(header) != wire::header_tag(pos) || len > max_message_ ||
        wire::record_start(pos, len, prefix_) != pos ||
        wire::record_end(pos, len, prefix_) > tx_.position) {
      return fail(Errc::protocol_violation, "ring " + std::to_string(side_) +
                                                ": read-back header " + hex(header) +
                                                " at position " + std::to_string(pos) +
                                                " does not start a record this side wrote");
    }
    record.resize(len);
    copy_out(tx_.data, tx_.size, wire::payload_position(pos, len, prefix_), record.data(), len);
    if (!visit(record)) break;
    pos = wire::record_end(pos, len, prefix_);
  }
  return Errc::ok;
}

Errc Channel::shutdown_send() {
  if (send_shut_.exchange(true, std::memory_order_relaxed)) return Errc::ok; // idempotent
  set_own_state(EndpointState::closed); // after every record we published (release)
  if (policy_ != NotifyPolicy::polling) doorbell_.ring(Wake::data);
  return Errc::ok;
}

Errc Channel::close(Nanos timeout) {
  if (failure_.load(std::memory_order_acquire) == Errc::closed) return Errc::closed;
  shutdown_send();
  Errc result = Errc::ok;
  if (unconsumed_outgoing() != 0) {
    result = wait_for(
        Wake::space, timeout,
        [&] {
          // Drained when the peer published a consumed index equal to what we produced.
          const std::uint64_t left = unconsumed_outgoing();
          return left == 0 ? Errc::ok : Errc::would_block;
        },
        false);
  }
  const std::uint64_t left = unconsumed_outgoing();
  const std::uint64_t produced = shared(control_->direction[1 - side_].produced.value)
                                     .load(std::memory_order_acquire); // snapshot, for the count
  discarded_on_close_ = produced >= rx_.position ? produced - rx_.position : 0;
  set_own_state(EndpointState::detached); // after our last use of the rings (release)
  if (policy_ != NotifyPolicy::polling) doorbell_.ring(Wake::space);
  std::string why = "closed by its owner";
  if (left != 0) why += "; " + std::to_string(left) + " bytes sent were never consumed by the peer";
  {
    std::lock_guard lock(detail_mutex_);
    detail_ = std::move(why);
    failure_.store(Errc::closed, std::memory_order_release); // detail_ complete before the code
  }
  return result == Errc::peer_closed ? Errc::ok : result;
}

ChannelStats Channel::stats() const {
  auto r = [](const std::atomic<std::uint64_t>& c) {
    return c.load(std::memory_order_relaxed); // a snapshot; counters order nothing
  };
  ChannelStats s;
  s.messages_sent = r(tx_.messages);
  s.bytes_sent = r(tx_.bytes);
  s.messages_received = r(rx_.messages);
  s.bytes_received = r(rx_.bytes);
  s.data_notifications = r(counters_.data_notifications);
  s.space_notifications = r(counters_.space_notifications);
  s.sleeps = r(counters_.sleeps);
  s.wakeups = r(counters_.wakeups);
  s.wait_timeouts = r(counters_.wait_timeouts);
  s.ring_full = r(tx_.ring_full);
  s.too_large = r(tx_.too_large);
  s.discarded_on_close = discarded_on_close_;
  return s;
}

} // namespace ivmc
