// A remote path that outlives its TCP connections.
//
// A live-migrated guest's TCP connections do not survive the move: QEMU's user networking
// (slirp) keeps their state in the source QEMU, and the destination knows nothing of them.
// The link above expects its remote path to be always there, so this path numbers the frames
// of one stream (a session), keeps every frame the receiver has not acknowledged, and on a new
// connection re-sends exactly what the receiver does not have: nothing is lost or duplicated
// across any number of reconnections.
//
// On each connection, in TcpPath frames (u32 length, then the bytes):
//   1. Both ends send HELLO (24 bytes): an 8-byte magic naming the role ("IVMCRS-S" from the
//      sender, "IVMCRS-R" from the receiver), the 8-byte session id, and the number of frames
//      this end has delivered on the session (always 0 from the sender).
//   2. The sender forgets the frames the receiver's count covers, re-sends the rest in order,
//      and carries on. The receiver acknowledges with 8-byte ACK frames (its delivered count)
//      every kAckEvery frames and whenever it has caught up.
// Everything read is checked (the other end is untrusted): a bad magic, another session, or a
// count outside what was sent drops that connection with the reason kept in last_error().
//
// Who connects is independent of the direction: a Connector yields the next connection (a
// guest connects out through user networking; a host process accepts). A receiver that is
// offered a newer connection while it has one takes the newer one (the sender came back from
// elsewhere; the old connection may never report its end).
//
// Threading: one thread uses a path (sends, or receives); request_reconnect() is for any
// thread (a membership notice that the connection is likely dead).
#pragma once

#include "ivmc/core/channel.hpp" // kForever
#include "ivmc/core/link.hpp"
#include "ivmc/posix/tcp_path.hpp"

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace ivmc::posix {

struct ResumableOptions {
  std::uint64_t session = 0;           // both ends must agree
  std::size_t window_bytes = 4u << 20; // sender: unacknowledged bytes before send() waits
  Nanos stall_timeout = 2'000'000'000; // sender: no ACK for this long with data out: reconnect
  std::size_t max_frame = 1u << 20;    // largest frame either way
  Nanos handshake_timeout = 5'000'000'000;
};

struct ResumableStats {
  std::uint64_t connections = 0; // connections that completed the handshake
  std::uint64_t resent = 0;      // sender: frames sent again on a later connection
  std::uint64_t dropped = 0;     // connections given up (broken, stalled, asked to)
};

class ResumablePath final : public FramePath {
public:
  enum class Role : std::uint8_t { sender, receiver };
  // The next connection, or nullopt if none could be had within `timeout` (0: do not wait).
  using Connector = std::function<std::optional<TcpPath>(Nanos timeout)>;

  ResumablePath(Role role, Connector connect, ResumableOptions options);

  // Sender: queues the frame and writes it on the current connection (making one if needed,
  // within `timeout`). ok means the frame will reach the receiver once any connection works;
  // timed_out means it was not queued (no connection, or the window stayed full).
  Errc send(std::span<const std::byte> head, std::span<const std::byte> body,
            Nanos timeout) override;
  // Receiver: the next frame of the session, across connections.
  Errc recv(std::span<std::byte> head, std::span<std::byte> body, std::size_t& length,
            Nanos timeout) override;
  std::size_t max_frame() const override { return options_.max_frame; }

  // Sender: wait until the receiver acknowledged every frame (before the process exits).
  Errc flush(Nanos timeout);
  // Drop the current connection at the next call (any thread).
  void request_reconnect() { reconnect_.store(true, std::memory_order_relaxed); } // a flag only
  bool connected() const { return connection_.has_value(); }
  std::uint64_t unacknowledged() const { return unacked_.size(); }
  const ResumableStats& stats() const { return stats_; }
  const std::string& last_error() const { return last_error_; }

private:
  bool ensure_connection(Nanos deadline);
  bool handshake(TcpPath& connection, Nanos deadline);
  void drop(std::string why);
  // Sender: apply what ACKs arrived (waiting up to `timeout` for the first); false if the
  // connection broke.
  bool read_acks(Nanos timeout);
  bool accept_count(std::uint64_t delivered, const char* where);
  bool send_ack();
  Errc delivered(); // receiver: count the frame just handed out, acknowledge when due

  Role role_;
  Connector connect_;
  ResumableOptions options_;
  std::optional<TcpPath> connection_;
  std::atomic<bool> reconnect_{false};
  // Sender: frames not yet acknowledged, numbered from acked_.
  std::deque<std::vector<std::byte>> unacked_;
  std::uint64_t acked_ = 0;
  std::size_t unacked_bytes_ = 0;
  Nanos last_progress_ = 0;
  // Receiver: frames delivered, and the count last acknowledged.
  std::uint64_t delivered_ = 0, ack_sent_ = 0;
  ResumableStats stats_;
  std::string last_error_;
};

} // namespace ivmc::posix
