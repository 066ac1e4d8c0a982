// A remote path across reconnections: see include/ivmc/posix/resumable_path.hpp.
// No fmt here: the statically linked guest agent uses this file.
#include "ivmc/posix/resumable_path.hpp"

#include "ivmc/posix/clock.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace ivmc::posix {
namespace {

constexpr std::size_t kHello = 24;
constexpr std::array<char, 8> kSenderMagic = {'I', 'V', 'M', 'C', 'R', 'S', '-', 'S'};
constexpr std::array<char, 8> kReceiverMagic = {'I', 'V', 'M', 'C', 'R', 'S', '-', 'R'};
constexpr std::uint64_t kAckEvery = 32; // frames between ACKs while frames keep coming
constexpr Nanos kSlice = 20'000'000;    // receiver: how often an idle wait looks for a newer
                                        // connection
constexpr Nanos kAckTimeout = 1'000'000'000;

Nanos now() {
  return MonotonicClock::read();
}

Nanos deadline_after(Nanos timeout) {
  const Nanos t = now();
  return timeout >= kForever - t ? kForever : t + std::max<Nanos>(timeout, 0);
}

} // namespace

ResumablePath::ResumablePath(Role role, Connector connect, ResumableOptions options)
    : role_(role), connect_(std::move(connect)), options_(options) {}

void ResumablePath::drop(std::string why) {
  if (connection_) ++stats_.dropped;
  connection_.reset();
  last_error_ = std::move(why);
}

bool ResumablePath::handshake(TcpPath& connection, Nanos deadline) {
  std::array<std::byte, kHello> mine{};
  const auto& magic = role_ == Role::sender ? kSenderMagic : kReceiverMagic;
  const std::uint64_t count = role_ == Role::sender ? 0 : delivered_;
  std::memcpy(mine.data(), magic.data(), 8);
  std::memcpy(mine.data() + 8, &options_.session, 8);
  std::memcpy(mine.data() + 16, &count, 8);
  // A connection already made is worth a second even to a caller that only looks (a receiver
  // on its local path polls this one with a zero timeout): dropped mid-handshake, it closes
  // under the other end, whose HELLO was merely in flight, and the two never meet.
  constexpr Nanos kAtLeast = 1'000'000'000;
  const Nanos limit = std::max(std::min(deadline, deadline_after(options_.handshake_timeout)),
                               deadline_after(std::min(options_.handshake_timeout, kAtLeast)));
  if (const Errc e = connection.send(mine, {}, std::max<Nanos>(limit - now(), 0)); e != Errc::ok) {
    last_error_ = "resumable path: sending HELLO: " + std::string(to_string(e));
    return false;
  }
  std::array<std::byte, kHello> theirs{};
  std::size_t n = 0;
  const Errc e = connection.recv(theirs, {}, n, std::max<Nanos>(limit - now(), 0));
  if (e != Errc::ok || n != kHello) {
    last_error_ = "resumable path: no HELLO from the other end (" + std::string(to_string(e)) +
                  ", " + std::to_string(n) + " bytes)";
    return false;
  }
  const auto& expected = role_ == Role::sender ? kReceiverMagic : kSenderMagic;
  std::uint64_t session = 0, delivered = 0;
  std::memcpy(&session, theirs.data() + 8, 8); // copy, then check
  std::memcpy(&delivered, theirs.data() + 16, 8);
  if (std::memcmp(theirs.data(), expected.data(), 8) != 0) {
    last_error_ = "resumable path: HELLO magic is not the other role's";
    return false;
  }
  if (session != options_.session) {
    last_error_ = "resumable path: HELLO for session " + std::to_string(session) +
                  ", this is session " + std::to_string(options_.session);
    return false;
  }
  if (role_ == Role::sender) return accept_count(delivered, "HELLO");
  return true;
}

bool ResumablePath::accept_count(std::uint64_t delivered, const char* where) {
  if (delivered < acked_ || delivered - acked_ > unacked_.size()) {
    last_error_ = std::string("resumable path: ") + where + " says " + std::to_string(delivered) +
                  " frames were delivered; only [" + std::to_string(acked_) + ", " +
                  std::to_string(acked_ + unacked_.size()) + "] is possible";
    return false;
  }
  if (delivered > acked_) last_progress_ = now();
  while (acked_ < delivered) {
    unacked_bytes_ -= unacked_.front().size();
    unacked_.pop_front();
    ++acked_;
  }
  return true;
}

bool ResumablePath::ensure_connection(Nanos deadline) {
  if (reconnect_.exchange(false, std::memory_order_relaxed)) { // a flag only
    drop("resumable path: reconnection requested");
  }
  if (connection_) return true;
  for (;;) {
    std::optional<TcpPath> fresh = connect_(std::max<Nanos>(deadline - now(), 0));
    if (!fresh) return false;
    if (handshake(*fresh, deadline)) {
      connection_.emplace(std::move(*fresh));
      ++stats_.connections;
      last_progress_ = now();
      if (role_ == Role::sender) {
        for (const std::vector<std::byte>& frame : unacked_) { // what the receiver lacks
          if (connection_->send(frame, {}, options_.handshake_timeout) != Errc::ok) {
            drop("resumable path: re-sending after reconnection: " + connection_->error());
            break;
          }
          ++stats_.resent;
        }
        if (connection_) return true;
      } else {
        ack_sent_ = delivered_;
        return true;
      }
    }
    if (now() >= deadline) return false;
  }
}

bool ResumablePath::read_acks(Nanos timeout) {
  const Nanos deadline = deadline_after(timeout);
  bool first = true;
  for (;;) {
    std::array<std::byte, 8> ack{};
    std::size_t n = 0;
    const Errc e = connection_->recv(ack, {}, n, first ? std::max<Nanos>(deadline - now(), 0) : 0);
    first = false;
    if (e == Errc::timed_out || e == Errc::would_block) return true;
    if (e != Errc::ok || n != 8) {
      drop("resumable path: reading ACKs: " +
           (e != Errc::ok ? std::string(to_string(e)) + " " + connection_->error()
                          : "an ACK of " + std::to_string(n) + " bytes"));
      return false;
    }
    std::uint64_t delivered = 0;
    std::memcpy(&delivered, ack.data(), 8);
    if (!accept_count(delivered, "an ACK")) {
      drop(last_error_);
      return false;
    }
  }
}

Errc ResumablePath::send(std::span<const std::byte> head, std::span<const std::byte> body,
                         Nanos timeout) {
  if (role_ != Role::sender) return Errc::protocol_violation;
  const std::size_t size = head.size() + body.size();
  if (size > options_.max_frame) return Errc::message_too_large;
  const Nanos deadline = deadline_after(timeout);
  for (;;) {
    if (!ensure_connection(deadline)) return Errc::timed_out;
    if (!read_acks(0)) continue;
    if (unacked_bytes_ + size <= options_.window_bytes || unacked_.empty()) break;
    // The window is full: wait for ACKs; a connection that acknowledges nothing for too
    // long is dead (a migrated guest's old connection may never report an error).
    if (now() - last_progress_ > options_.stall_timeout) {
      drop("resumable path: no ACK for " + std::to_string(options_.stall_timeout / 1'000'000) +
           " ms with " + std::to_string(unacked_.size()) + " frames outstanding");
      continue;
    }
    if (now() >= deadline) return Errc::timed_out;
    read_acks(std::min<Nanos>(deadline - now(), kSlice));
  }
  std::vector<std::byte> frame(size);
  if (!head.empty()) std::memcpy(frame.data(), head.data(), head.size());
  if (!body.empty()) std::memcpy(frame.data() + head.size(), body.data(), body.size());
  unacked_bytes_ += size;
  if (unacked_.empty()) last_progress_ = now(); // the stall clock starts with the first frame
  unacked_.push_back(std::move(frame));
  // Queued: from here on the frame reaches the receiver on this or a later connection.
  if (connection_->send(unacked_.back(), {}, std::max<Nanos>(deadline - now(), kAckTimeout)) !=
      Errc::ok) {
    drop("resumable path: sending: " + connection_->error());
  }
  return Errc::ok;
}

Errc ResumablePath::flush(Nanos timeout) {
  if (role_ != Role::sender) return Errc::ok;
  const Nanos deadline = deadline_after(timeout);
  // The stall clock starts now: the connection may have idled for long while the link above
  // used its local path, with the receiver's last ACK waiting unread in the socket.
  last_progress_ = std::max(last_progress_, now());
  while (!unacked_.empty()) {
    if (now() >= deadline) return Errc::timed_out;
    if (!ensure_connection(deadline)) return Errc::timed_out;
    if (now() - last_progress_ > options_.stall_timeout) {
      drop("resumable path: no ACK while flushing");
      continue;
    }
    read_acks(std::min<Nanos>(deadline - now(), kSlice));
  }
  return Errc::ok;
}

bool ResumablePath::send_ack() {
  std::array<std::byte, 8> ack;
  std::memcpy(ack.data(), &delivered_, 8);
  if (connection_->send(ack, {}, kAckTimeout) != Errc::ok) {
    drop("resumable path: sending an ACK: " + connection_->error());
    return false;
  }
  ack_sent_ = delivered_;
  return true;
}

Errc ResumablePath::delivered() {
  ++delivered_;
  // Every kAckEvery frames, and whenever we caught up: the caller may not come back (the
  // frame may be the stream's last) and the sender must learn it arrived.
  if (delivered_ - ack_sent_ >= kAckEvery || connection_->buffered() == 0) send_ack();
  return Errc::ok;
}

Errc ResumablePath::recv(std::span<std::byte> head, std::span<std::byte> body, std::size_t& length,
                         Nanos timeout) {
  if (role_ != Role::receiver) return Errc::protocol_violation;
  const Nanos deadline = deadline_after(timeout);
  bool looked = false; // a zero timeout still gets one look at what is there
  Nanos wait = 0;      // the first look does not wait; later ones wait a slice
  for (;;) {
    if (looked && now() >= deadline) return Errc::timed_out;
    looked = true;
    if (!ensure_connection(deadline)) continue;
    const Errc e = connection_->recv(head, body, length, wait);
    if (e == Errc::ok) return delivered();
    if (e == Errc::buffer_too_small) return e;
    if (e != Errc::timed_out && e != Errc::would_block) {
      drop("resumable path: connection lost: " + std::string(to_string(e)) + " " +
           connection_->error());
      continue;
    }
    // Caught up: acknowledge, then wait a slice; a newer connection replaces this one.
    if (delivered_ != ack_sent_ && !send_ack()) continue;
    if (std::optional<TcpPath> newer = connect_(0)) {
      if (handshake(*newer, deadline)) {
        drop("resumable path: the sender reconnected");
        connection_.emplace(std::move(*newer));
        ++stats_.connections;
        ack_sent_ = delivered_;
      }
      continue;
    }
    wait = std::clamp<Nanos>(deadline - now(), 0, kSlice);
  }
}

} // namespace ivmc::posix
