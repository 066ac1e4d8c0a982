// Link: one ordered stream over the local and the remote path. See link.hpp for the protocol.
#include "ivmc/core/link.hpp"

#include "ivmc/core/channel.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>

namespace ivmc {
namespace {

// The 16-byte frame header, little-endian on the wire (every supported host is).
enum FrameKind : std::uint32_t {
  kData = 0,
  kPathEnd = 1, // the sender leaves this path. Body: the 8-byte epoch of the local instance it
                // goes to, or empty for the remote path. Its next frame (seq) comes there.
  kFinish = 2,  // end of the stream
};
constexpr std::size_t kHeader = 16;
using HeaderBytes = std::array<std::byte, kHeader>;

HeaderBytes encode(std::uint64_t seq, std::uint32_t kind) {
  HeaderBytes h{};
  std::memcpy(h.data(), &seq, 8);
  std::memcpy(h.data() + 8, &kind, 4);
  return h;
}

void decode(const HeaderBytes& h, std::uint64_t& seq, std::uint32_t& kind) {
  std::memcpy(&seq, h.data(), 8);
  std::memcpy(&kind, h.data() + 8, 4);
}

bool path_broken(Errc e) {
  return e == Errc::peer_dead || e == Errc::peer_closed || e == Errc::closed ||
         e == Errc::doorbell_failed || e == Errc::protocol_violation;
}

Nanos add(Nanos a, Nanos b) {
  return b >= kForever - a ? kForever : a + b;
}

} // namespace

std::string_view to_string(PathKind p) {
  return p == PathKind::local ? "local" : "remote";
}

std::string_view to_string(LinkOperation op) {
  switch (op) {
  case LinkOperation::establishment:
    return "connection establishment";
  case LinkOperation::pending_data:
    return "pending data handling";
  case LinkOperation::teardown:
    return "connection tearing down";
  }
  return "unknown";
}

namespace {
void report(const LinkEnvironment& env, LinkOperation op, Errc outcome, std::uint64_t bytes) {
  if (env.on_operation) env.on_operation(op, outcome, bytes);
}
} // namespace

std::string_view to_string(RacePolicy p) {
  switch (p) {
  case RacePolicy::prevention:
    return "prevention";
  case RacePolicy::resolution:
    return "resolution";
  case RacePolicy::none:
    return "none";
  }
  return "unknown";
}

bool parse_race_policy(std::string_view text, RacePolicy& out) {
  for (auto p : {RacePolicy::prevention, RacePolicy::resolution, RacePolicy::none}) {
    if (text == to_string(p)) {
      out = p;
      return true;
    }
  }
  return false;
}

// --- ChannelPath ---------------------------------------------------------------------------

Errc ChannelPath::send(std::span<const std::byte> head, std::span<const std::byte> body,
                       Nanos timeout) {
  return channel_.send(head, body, timeout);
}

Errc ChannelPath::recv(std::span<std::byte> head, std::span<std::byte> body, std::size_t& length,
                       Nanos timeout) {
  return channel_.recv(head, body, length, timeout);
}

std::size_t ChannelPath::max_frame() const {
  return channel_.max_message();
}

Errc ChannelPath::read_back_unconsumed(
    const std::function<bool(std::span<const std::byte>)>& visit) {
  return channel_.read_back_unconsumed(visit);
}

bool ChannelPath::broken() const {
  const Errc f = channel_.failure();
  return f != Errc::ok;
}

// --- LinkSender ----------------------------------------------------------------------------

LinkSender::LinkSender(LinkEnvironment env, LinkConfig config, Clock& clock)
    : env_(std::move(env)), config_(config), clock_(clock) {}

bool LinkSender::want_local() {
  if (config_.race == RacePolicy::prevention) {
    ++stats_.probes;
    return env_.probe_co_resident();
  }
  // After a fallback, stay remote until the view changes: the stale channel is not retried.
  if (env_.view_version() == fallback_version_) return false;
  return env_.believes_co_resident();
}

Errc LinkSender::send_frame(FramePath& path, std::uint32_t kind, std::span<const std::byte> body,
                            Nanos timeout) {
  const HeaderBytes head = encode(next_seq_, kind);
  return path.send(head, body, timeout);
}

void LinkSender::resend_pending(FramePath& left) {
  if (!config_.resend_unconsumed) return;
  std::uint64_t last = 0;
  bool any = false;
  Errc sent = Errc::ok;
  const Errc read = left.read_back_unconsumed([&](std::span<const std::byte> frame) {
    if (frame.size() < kHeader) return false; // not a frame of ours: stop there
    HeaderBytes head;
    std::memcpy(head.data(), frame.data(), kHeader);
    std::uint64_t seq = 0;
    std::uint32_t kind = 0;
    decode(head, seq, kind);
    if (kind != kData) return true; // markers led to paths the receiver no longer takes
    // Only data frames we sent, in order; anything else means the area is not what we wrote.
    if (seq >= next_seq_ || (any && seq <= last)) return false;
    sent = env_.remote->send(head, frame.subspan(kHeader), config_.establish_timeout);
    if (sent != Errc::ok) return false;
    last = seq;
    any = true;
    ++stats_.resent;
    return true;
  });
  // What could not be read back or re-sent is reported; the receiver counts it as a gap.
  if (read != Errc::ok || sent != Errc::ok) {
    report(env_, LinkOperation::pending_data, read != Errc::ok ? read : sent, 0);
  }
}

void LinkSender::switch_path(PathKind to, Nanos now) {
  if (to == PathKind::local) {
    const LocalPath local = env_.open_local(config_.establish_timeout);
    if (local.path == nullptr) { // establishment deferred: keep going remote
      ++stats_.deferred;
      report(env_, LinkOperation::establishment, Errc::would_block, 0);
      return;
    }
    report(env_, LinkOperation::establishment, Errc::ok, 0);
    // The receiver reads the remote path up to this marker, then opens instance `epoch`.
    std::array<std::byte, 8> epoch;
    std::memcpy(epoch.data(), &local.epoch, 8);
    if (send_frame(*env_.remote, kPathEnd, epoch, config_.establish_timeout) != Errc::ok) return;
    local_ = local.path;
    path_ = PathKind::local;
    ++stats_.switches_to_local;
  } else {
    if (local_ != nullptr) {
      // Best effort: if the local path is already broken the receiver finds out by itself.
      const Errc e = send_frame(*local_, kPathEnd, {}, config_.stale_timeout);
      resend_pending(*local_);
      env_.release_local();
      report(env_, LinkOperation::teardown, e, 0);
      local_ = nullptr;
    }
    path_ = PathKind::remote;
    ++stats_.switches_to_remote;
  }
  switch_started_ = now;
}

Errc LinkSender::send(std::span<const std::byte> message, Nanos timeout) {
  // The switching point: the co-residency decision and the send are one step of this thread.
  const PathKind desired = want_local() ? PathKind::local : PathKind::remote;
  if (desired != path_) switch_path(desired, clock_.now());
  if (path_ == PathKind::local && message.size() + kHeader > local_->max_frame()) {
    // Larger than the ring can hold: this one goes remote, as XenLoop does, and order is kept
    // by leaving the local path properly (the next send comes back).
    switch_path(PathKind::remote, clock_.now());
    ++stats_.too_large_remote;
  }
  Errc e = Errc::ok;
  if (path_ == PathKind::local) {
    e = send_frame(*local_, kData, message, std::min(timeout, config_.stale_timeout));
    if (e == Errc::ok) {
      ++stats_.sent_local;
    } else if (config_.race == RacePolicy::none) {
      // No race handling: the message is gone; the receiver will see the gap.
      ++stats_.lost_messages;
      stats_.lost_bytes += message.size();
      report(env_, LinkOperation::pending_data, e, message.size());
      ++next_seq_;
      return Errc::ok;
    } else {
      // Resolution (and prevention caught out by a change after its probe): the channel is
      // stale or broken; fall back to the remote path until the view changes, and re-send.
      ++stats_.fallbacks;
      report(env_, LinkOperation::pending_data, e, message.size()); // re-sent below
      fallback_version_ = env_.view_version();
      resend_pending(*local_);
      env_.release_local();
      report(env_, LinkOperation::teardown, e, 0);
      local_ = nullptr;
      path_ = PathKind::remote;
      switch_started_ = clock_.now();
    }
  }
  if (path_ == PathKind::remote) {
    e = send_frame(*env_.remote, kData, message, timeout);
    if (e != Errc::ok) return e;
    ++stats_.sent_remote;
  }
  if (switch_started_ >= 0) {
    const Nanos took = clock_.now() - switch_started_;
    stats_.switch_ns_total += took;
    stats_.switch_ns_max = std::max(stats_.switch_ns_max, took);
    ++stats_.switch_samples;
    switch_started_ = -1;
  }
  ++next_seq_;
  ++stats_.messages_sent;
  stats_.bytes_sent += message.size();
  return Errc::ok;
}

Errc LinkSender::renew_local(Nanos timeout) {
  if (path_ != PathKind::local || !env_.renew_local) return Errc::ok; // next set-up uses it
  const LocalPath fresh = env_.renew_local(timeout);
  if (fresh.path == nullptr) {
    ++stats_.deferred;
    report(env_, LinkOperation::establishment, Errc::would_block, 0);
    return Errc::would_block;
  }
  report(env_, LinkOperation::establishment, Errc::ok, 0);
  std::array<std::byte, 8> epoch;
  std::memcpy(epoch.data(), &fresh.epoch, 8);
  // The receiver drains the old instance up to this marker, then opens the new one.
  const Errc e = send_frame(*local_, kPathEnd, epoch, timeout);
  env_.release_local(); // the old instance, once the receiver consumed it
  report(env_, LinkOperation::teardown, e, 0);
  local_ = fresh.path;
  ++stats_.renewals;
  if (e != Errc::ok) { // the old instance was broken: treat the move like a fallback
    path_ = PathKind::remote;
    env_.release_local();
    local_ = nullptr;
  }
  return Errc::ok;
}

void LinkSender::refresh() {
  if (path_ == PathKind::local && local_ != nullptr && local_->broken() &&
      config_.race != RacePolicy::none) {
    // The channel broke while this sender was idle (the peer left, or this VM did): what it
    // wrote there last may never be read. Leave it as a failed send would, handing its
    // pending frames to the remote path, and stay remote until the view changes.
    ++stats_.fallbacks;
    fallback_version_ = env_.view_version();
    resend_pending(*local_);
    env_.release_local();
    report(env_, LinkOperation::teardown, Errc::peer_dead, 0);
    local_ = nullptr;
    path_ = PathKind::remote;
    switch_started_ = clock_.now();
    return;
  }
  const PathKind desired = want_local() ? PathKind::local : PathKind::remote;
  if (desired != path_) switch_path(desired, clock_.now());
}

Errc LinkSender::finish(Nanos timeout) {
  FramePath& path = path_ == PathKind::local ? *local_ : *env_.remote;
  return send_frame(path, kFinish, {}, timeout);
}

// --- LinkReceiver --------------------------------------------------------------------------

LinkReceiver::LinkReceiver(LinkEnvironment env, Clock& clock)
    : env_(std::move(env)), clock_(clock) {}

Errc LinkReceiver::recv(std::span<std::byte> buffer, std::size_t& length, Nanos timeout) {
  const Nanos deadline = add(clock_.now(), timeout);
  // How long a reader of the local path waits before it looks at the remote path: a sender
  // that gave up on a stale channel re-sends there without being able to leave a marker.
  constexpr Nanos kSlice = 2'000'000;
  // Handles one received frame; returns true when it is a message for the caller (or the end).
  Errc result = Errc::ok;
  auto handle = [&](const HeaderBytes& head, std::size_t n, bool on_local) {
    if (n < kHeader) {
      result = Errc::protocol_violation; // not a link frame
      return true;
    }
    std::uint64_t seq = 0;
    std::uint32_t kind = 0;
    decode(head, seq, kind);
    if (on_local && local_->broken()) {
      ++stats_.drained_after_break;
      report(env_, LinkOperation::pending_data, Errc::ok, n);
    }
    if (kind == kPathEnd) { // follow the sender to its other path
      if (seq > expected_) stats_.lost_messages += seq - expected_;
      expected_ = std::max(expected_, seq);
      const bool to_local = n == kHeader + 8; // else to the remote path
      if ((n != kHeader && !to_local) || (!on_local && !to_local)) {
        result = Errc::protocol_violation; // a marker must lead somewhere else
        return true;
      }
      if (to_local) std::memcpy(&local_epoch_, buffer.data(), 8);
      path_ = to_local ? PathKind::local : PathKind::remote;
      if (on_local && env_.release_local) env_.release_local(); // done with that instance
      local_ = nullptr;
      ++stats_.receiver_switches;
      return false;
    }
    if (kind == kFinish) {
      result = Errc::peer_closed;
      return true;
    }
    if (kind != kData) {
      result = Errc::protocol_violation;
      return true;
    }
    if (seq < expected_) { // already delivered (a re-send after an ambiguous failure)
      ++stats_.duplicates;
      return false;
    }
    if (seq > expected_) stats_.lost_messages += seq - expected_; // a visible gap
    expected_ = seq + 1;
    length = n - kHeader;
    ++stats_.messages_received;
    stats_.bytes_received += length;
    result = Errc::ok;
    return true;
  };
  // A zero timeout still looks: the deadline ends the wait only after a pass that found
  // nothing (an event loop calls with 0 and must get what is there, across path markers).
  bool progressed = true;
  // The local path has nothing: if the sender fell back, its next frame waits on the remote.
  auto try_remote = [&]() -> std::optional<Errc> {
    HeaderBytes head{};
    std::size_t n = 0;
    const Errc e = env_.remote->recv(head, buffer, n, 0);
    if (e == Errc::timed_out || e == Errc::would_block) return std::nullopt;
    if (e == Errc::buffer_too_small) {
      length = n > kHeader ? n - kHeader : 0;
      return e;
    }
    if (e != Errc::ok) return e;
    if (path_ == PathKind::local && local_ != nullptr && env_.release_local) env_.release_local();
    path_ = PathKind::remote; // the sender is there now
    local_ = nullptr;
    ++stats_.receiver_switches;
    if (handle(head, n, false)) return result;
    progressed = true;
    return std::nullopt;
  };
  for (;;) {
    const Nanos now = clock_.now();
    if (now >= deadline && !progressed) return Errc::timed_out;
    progressed = false;
    if (path_ == PathKind::local && local_ == nullptr) {
      // The sender moved to the local path; ours may still be being established (deferred).
      local_ = env_.find_local(local_epoch_, std::min(deadline - now, kSlice));
      if (local_ == nullptr) {
        if (auto r = try_remote()) return *r;
        continue;
      }
    }
    const bool on_local = path_ == PathKind::local;
    FramePath& path = on_local ? *local_ : *env_.remote;
    HeaderBytes head{};
    std::size_t n = 0;
    const Errc e =
        path.recv(head, buffer, n, on_local ? std::min(deadline - now, kSlice) : deadline - now);
    if (e == Errc::ok) {
      if (handle(head, n, on_local)) return result;
      progressed = true; // a marker or a duplicate: look again
      continue;
    }
    if (e == Errc::buffer_too_small) {
      length = n > kHeader ? n - kHeader : 0;
      return e;
    }
    if (on_local && path_broken(e)) {
      // The local path broke; it has delivered everything it held. Continue remote.
      if (env_.release_local) env_.release_local();
      path_ = PathKind::remote;
      local_ = nullptr;
      ++stats_.receiver_switches;
      progressed = true;
      continue;
    }
    if (e == Errc::timed_out || e == Errc::would_block) {
      if (on_local) {
        if (auto r = try_remote()) return *r;
      }
      continue;
    }
    return e;
  }
}

} // namespace ivmc
