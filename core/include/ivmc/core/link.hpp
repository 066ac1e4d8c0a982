// A link: one ordered message stream between two VMs over two paths, the shared-memory channel
// when they are co-resident and the remote transport (TCP, the modelled network) otherwise.
// The application sees one stream; the link decides the path before each send.
//
// Every frame carries a 16-byte header: the message's sequence number and a kind. When the
// sender leaves a path on purpose it sends a path_end frame on it, and the receiver, which
// reads one path at a time, moves to the other path only after that marker, so nothing is
// reordered. When a path breaks instead (the peer migrated away, died, or a send on it timed
// out), the receiver drains whatever the path still delivers (a channel hands out every record
// the peer completely wrote, even after it died) and moves on; the sender re-sends the message
// whose send failed on the other path. A receiver never leaves a path on its own belief about
// co-residency: the sender's belief may differ, and only the frames say where it is. Sequence
// numbers make any loss or duplicate visible: duplicates are dropped, gaps are counted as lost
// messages, never hidden.
//
// Threading: one thread sends and one thread receives on a link end, as on a Channel.
#pragma once

#include "ivmc/core/errc.hpp"
#include "ivmc/core/platform.hpp"

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace ivmc {

// One end of a path carrying whole frames in order. Implemented by ChannelPath (below) for the
// local path and by each platform's remote transport.
class FramePath {
public:
  virtual ~FramePath() = default;
  // `head` then `body` as one frame.
  virtual Errc send(std::span<const std::byte> head, std::span<const std::byte> body,
                    Nanos timeout) = 0;
  // The first head.size() bytes of the next frame into `head`, the rest into `body`.
  virtual Errc recv(std::span<std::byte> head, std::span<std::byte> body, std::size_t& length,
                    Nanos timeout) = 0;
  virtual std::size_t max_frame() const = 0;
  // True once the path can deliver nothing new (what it still holds is drained first).
  virtual bool broken() const { return false; }
  // Frames sent on this path that the receiver may not have taken, oldest first (see
  // Channel::read_back_unconsumed); a path that cannot tell visits none.
  virtual Errc read_back_unconsumed(const std::function<bool(std::span<const std::byte>)>&) {
    return Errc::ok;
  }
};

class Channel;
// The shared-memory channel as a link path.
class ChannelPath final : public FramePath {
public:
  explicit ChannelPath(Channel& channel) : channel_(channel) {}
  Errc send(std::span<const std::byte> head, std::span<const std::byte> body,
            Nanos timeout) override;
  Errc recv(std::span<std::byte> head, std::span<std::byte> body, std::size_t& length,
            Nanos timeout) override;
  std::size_t max_frame() const override;
  bool broken() const override;
  Errc read_back_unconsumed(const std::function<bool(std::span<const std::byte>)>& visit) override;
  Channel& channel() { return channel_; }

private:
  Channel& channel_;
};

enum class PathKind : std::uint8_t { local, remote };

// The operations of the survey's Table IV (its rows): what a link does that depends on
// co-residency and so can run inside a race window.
enum class LinkOperation : std::uint8_t { establishment, pending_data, teardown };
std::string_view to_string(LinkOperation op);
std::string_view to_string(PathKind p);

// How a sender deals with the race between a membership change and its view of it.
enum class RacePolicy : std::uint8_t {
  prevention, // check the truth (a probe) before establishing and before every send
  resolution, // trust the view; a local send that fails or times out falls back to remote
              // until the next view update, re-sending that message
  none,       // trust the view; a failed local send is lost (to measure the damage)
};
std::string_view to_string(RacePolicy p);
bool parse_race_policy(std::string_view text, RacePolicy& out);

// One established instance of the local path. The epoch names the instance (a channel may be
// torn down and set up again between the same two VMs several times while a lagging receiver
// is still draining an older one); the sender announces it in the path_end frame that sends
// the receiver over, so the receiver opens exactly that instance.
struct LocalPath {
  FramePath* path = nullptr;
  std::uint64_t epoch = 0;
};

// What a link end needs from its platform and membership source.
struct LinkEnvironment {
  FramePath* remote = nullptr; // always available
  // Sender: establish (or reuse) the local path to the peer; path == nullptr when it cannot be
  // had now (the establishment is deferred and the link stays remote).
  std::function<LocalPath(Nanos timeout)> open_local;
  // Sender, optional: establish a replacement for the current local instance (MemPipe's pipe
  // inflate/deflate: a new ring size after a pool rebalance). The current instance stays
  // until the next release_local().
  std::function<LocalPath(Nanos timeout)> renew_local;
  // Receiver: the instance `epoch` the sender announced; nullptr while it is not established
  // on this side yet.
  std::function<FramePath*(std::uint64_t epoch, Nanos timeout)> find_local;
  // This end is done with the current local instance (switched away, or it broke). The
  // sender's release is the teardown: the instance is not released until its pending data was
  // consumed (survey 5.2). Optional for a receiver.
  std::function<void()> release_local;
  // This VM's current belief: is the peer co-resident? And the view's version number.
  std::function<bool()> believes_co_resident;
  std::function<std::uint64_t()> view_version;
  // The truth, at the price of a probe (used by RacePolicy::prevention).
  std::function<bool()> probe_co_resident;
  // Optional: told of every Table IV operation with its outcome (ok, or the error: deferred
  // establishments report would_block, stale sends timed_out) and the bytes it concerned.
  // The platform classifies it against the membership source's race windows.
  std::function<void(LinkOperation op, Errc outcome, std::uint64_t bytes)> on_operation;
};

struct LinkConfig {
  RacePolicy race = RacePolicy::resolution;
  Nanos stale_timeout = 10'000'000;      // resolution: how long a local send may take before it is
                                         // declared stale and the message goes remote
  Nanos establish_timeout = 100'000'000; // how long open_local may take
  // When the sender leaves a local path (on purpose or after a failed send), re-send on the
  // remote path every frame the local path may not have delivered. For platforms where a
  // local path can stop reaching the receiver without failing: a live-migrated KVM guest
  // keeps writing into its copy of the region. The receiver drops what it already had.
  bool resend_unconsumed = false;
};

struct LinkStats {
  std::uint64_t messages_sent = 0, bytes_sent = 0, messages_received = 0, bytes_received = 0;
  std::uint64_t sent_local = 0, sent_remote = 0;
  std::uint64_t switches_to_local = 0, switches_to_remote = 0; // sender, on purpose
  std::uint64_t fallbacks = 0;        // sender: local sends that failed, message re-sent remote
  std::uint64_t too_large_remote = 0; // sender: messages over the local path's limit
  std::uint64_t deferred = 0;         // sender: wanted local, establishment not possible yet
  std::uint64_t renewals = 0;         // sender: moves to a replacement local instance
  std::uint64_t probes = 0;           // prevention: truth checks made
  std::uint64_t resent = 0;           // sender: frames re-sent remote from a local path it left
  std::uint64_t lost_messages = 0, lost_bytes = 0; // sender (policy none) or receiver (gaps)
  std::uint64_t duplicates = 0;                    // receiver: frames dropped as already delivered
  std::uint64_t receiver_switches = 0;             // receiver: moves to the other path
  std::uint64_t drained_after_break = 0; // receiver: frames read from the local path after it
                                         // broke (pending data handed over, Table IV)
  Nanos switch_ns_total = 0, switch_ns_max = 0; // sender: decision to first frame on new path
  std::uint64_t switch_samples = 0;
};

class LinkSender {
public:
  LinkSender(LinkEnvironment env, LinkConfig config, Clock& clock);
  Errc send(std::span<const std::byte> message, Nanos timeout = 1'000'000'000);
  // Ends the stream: the receiver gets peer_closed after the last message.
  Errc finish(Nanos timeout = 1'000'000'000);
  // Re-decides the path now, without sending: for a platform that is told of a view change
  // (a membership subscription) and wants the link to switch before the next send. Called
  // from inside a synchronous membership update, it switches while the old path still works.
  // A local path that broke meanwhile is left as a failed send leaves it (resolution and
  // prevention: its pending frames go remote, the link stays remote until the view changes),
  // so an idle sender need not wait for its next message to notice.
  void refresh();
  // The local path in use (null on the remote path): a platform may watch it while idle.
  FramePath* local_path() const { return path_ == PathKind::local ? local_ : nullptr; }
  // Moves the stream to a replacement local instance (env.renew_local) without leaving shared
  // memory: the receiver drains the old instance to its marker and continues on the new one.
  // On the remote path this does nothing now; the next establishment uses the new instance.
  Errc renew_local(Nanos timeout = 1'000'000'000);
  PathKind path() const { return path_; }
  const LinkStats& stats() const { return stats_; }

private:
  bool want_local();
  void switch_path(PathKind to, Nanos now);
  // resend_unconsumed: the frames `left` may not have delivered, again on the remote path.
  void resend_pending(FramePath& left);
  Errc send_frame(FramePath& path, std::uint32_t kind, std::span<const std::byte> body,
                  Nanos timeout);

  LinkEnvironment env_;
  LinkConfig config_;
  Clock& clock_;
  PathKind path_ = PathKind::remote;
  FramePath* local_ = nullptr;
  std::uint64_t next_seq_ = 0;
  std::uint64_t fallback_version_ = ~std::uint64_t{0}; // stay remote while the view is this
  Nanos switch_started_ = -1;
  LinkStats stats_;
};

class LinkReceiver {
public:
  LinkReceiver(LinkEnvironment env, Clock& clock);
  // Next message in order; peer_closed after the sender's finish().
  Errc recv(std::span<std::byte> buffer, std::size_t& length, Nanos timeout = 1'000'000'000);
  PathKind path() const { return path_; }
  const LinkStats& stats() const { return stats_; }

private:
  LinkEnvironment env_;
  Clock& clock_;
  PathKind path_ = PathKind::remote;
  FramePath* local_ = nullptr;
  std::uint64_t expected_ = 0;
  std::uint64_t local_epoch_ = 0; // the instance the sender sent us to
  LinkStats stats_;
};

} // namespace ivmc
