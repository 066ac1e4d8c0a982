// One endpoint of a bidirectional shared-memory channel: two byte rings (wire.hpp) in an area
// of shared memory, a doorbell to wake the peer, and a clock.
//
// Threading: one thread may send and one other thread may receive on an endpoint at the same
// time (each ring is single-producer single-consumer). heartbeat(), flush(), mark_peer_dead()
// and stats() may be called from any thread.
//
// Every value read from the shared area is copied once, validated, then used; a violation puts
// the endpoint into the protocol_violation state and error_detail() says what and where; the
// endpoint then marks itself failed in the area, so its peer ends with protocol_violation too
// instead of waiting for it. Each endpoint also checks that its own line in the area still holds
// what it wrote (a third writer forging its state is a violation). A peer
// that stops (heartbeat lost, or the platform says so) makes every call return peer_dead after
// the records it had completely written are delivered: nothing it sent is lost.
#pragma once

#include "ivmc/core/errc.hpp"
#include "ivmc/core/platform.hpp"
#include "ivmc/core/wire.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <span>
#include <string>

namespace ivmc {

inline constexpr Nanos kForever = std::numeric_limits<Nanos>::max();

// How the two sides tell each other about new data and freed space. Chosen by the creator for
// the whole channel (stored in the area), so both sides agree on who sleeps and who rings.
enum class NotifyPolicy : std::uint32_t {
  polling = 0,         // nobody sleeps, nobody rings: lowest latency, burns a core per side
  on_demand = 1,       // receiver sets a request flag before sleeping; sender rings only then
  per_packet = 2,      // PNI: sender rings after every message
  atw = 3,             // ATW(N, t): one ring per N messages or when t has passed, first of both
  spin_then_block = 4, // receiver polls for a spin budget, then sleeps as in on_demand
};
std::string_view to_string(NotifyPolicy p);
// Parses "polling", "on_demand", "per_packet"/"pni", "atw", "spin_then_block"; false if unknown.
bool parse_notify_policy(std::string_view text, NotifyPolicy& out);

struct NotifyConfig {
  NotifyPolicy policy = NotifyPolicy::on_demand;
  std::uint32_t atw_batch = 16; // ATW N: messages per notification
  Nanos atw_window = 100'000;   // ATW t: longest a message waits for its notification
  Nanos spin_budget = 50'000;   // spin_then_block: how long to poll before sleeping
};

struct LivenessConfig {
  Nanos heartbeat_period = 100'000'000; // how often an endpoint proves it is alive
  Nanos peer_timeout = 2'000'000'000;   // a peer whose heartbeat stood still this long is dead
  Nanos wait_slice = 50'000'000;        // longest single sleep, so liveness is re-checked
};

struct ChannelConfig {
  std::uint32_t ring_bytes = 256 * 1024; // per direction; a power of two
  std::uint32_t max_message = 0;         // 0: the largest that fits (ring_bytes - 80; - 88
                                         // with record_crc32c)
  NotifyConfig notify;                   // the creator's policy is the channel's policy
  LivenessConfig liveness;
  std::uint64_t platform_address = 0; // this endpoint's doorbell address (opaque)
  // Explicit trust (survey 3.6.2): given the peer's platform address, may this endpoint talk
  // to it? Unset admits everyone. An attacher checks the creator before taking its side; a
  // creator checks the attacher when it appears. A refusal is Errc::refused with a detail.
  std::function<bool(std::uint64_t peer_address)> admit;
  // Optional integrity: every record carries a CRC32C of its header and payload (wire.hpp,
  // kFeatureRecordCrc32c), checked by the receiver before it delivers the record; a mismatch is
  // a protocol_violation. The creator's choice is recorded in the area; an attacher whose
  // setting differs is refused. Without it, the receiver checks every header (tag, length,
  // placement, pads) and the indices, but cannot tell random bytes in a payload from data.
  bool record_crc32c = false;
};

struct ChannelStats {
  std::uint64_t messages_sent = 0, bytes_sent = 0;
  std::uint64_t messages_received = 0, bytes_received = 0;
  std::uint64_t data_notifications = 0;  // doorbell rings telling the peer about data
  std::uint64_t space_notifications = 0; // doorbell rings telling the peer about space
  std::uint64_t sleeps = 0;              // times this endpoint went to sleep on its doorbell
  std::uint64_t wakeups = 0;             // sleeps ended by a ring
  std::uint64_t wait_timeouts = 0;       // sleeps ended by the wait slice or the deadline
  std::uint64_t ring_full = 0;           // sends that found no space and had to wait
  std::uint64_t too_large = 0;           // sends refused with message_too_large
  std::uint64_t discarded_on_close = 0;  // incoming bytes left unread when close() ended
};

// A record's payload where it lies in the ring: `first`, then `second` when the record wraps
// around the ring's end (`second` is empty otherwise). See Channel::reserve and Channel::peek.
template <class Byte>
struct RingSpans {
  std::span<Byte> first, second;
  std::size_t size() const { return first.size() + second.size(); }
};
using WritableRecord = RingSpans<std::byte>;       // ring space to fill, from reserve()
using ReadableRecord = RingSpans<const std::byte>; // a message in place, from peek()

// Result of creating or attaching an endpoint.
class Channel;
struct Opened {
  std::unique_ptr<Channel> channel; // null on error
  Errc error = Errc::ok;
  std::string detail; // what went wrong and where, when error != ok
};

class Channel {
public:
  // Bytes of shared memory a channel with these ring sizes needs.
  static std::size_t area_bytes(std::uint32_t ring0_bytes, std::uint32_t ring1_bytes);

  // Initialise `area` as side 0 (zeroing it) and go live. The peer may attach at any time;
  // messages sent before it does wait in the ring.
  static Opened create(SharedRegion area, const ChannelConfig& config, Doorbell& doorbell,
                       Clock& clock);
  // Attach to an area a creator initialised, as side 1. Returns would_block while the area is
  // not initialised yet (so a caller can retry until its own deadline), bad_layout if its
  // geometry does not fit `area`, already_attached if side 1 is taken.
  static Opened attach(SharedRegion area, const ChannelConfig& config, Doorbell& doorbell,
                       Clock& clock);

  ~Channel(); // detaches (without waiting) if close() was not called
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Send one message. timeout 0: do not wait; kForever: wait as long as the peer lives.
  Errc send(std::span<const std::byte> message, Nanos timeout = kForever);
  // Receive one message into `buffer`; `length` is set to its size (or, on buffer_too_small,
  // to the size needed; the message stays queued).
  Errc recv(std::span<std::byte> buffer, std::size_t& length, Nanos timeout = kForever);
  // Gather and scatter: `head` then `body` travel as one message; on receipt the first
  // head.size() bytes land in `head` and the rest in `body` (a framing layer's header and its
  // caller's payload, without a copy in between).
  Errc send(std::span<const std::byte> head, std::span<const std::byte> body, Nanos timeout);
  Errc recv(std::span<std::byte> head, std::span<std::byte> body, std::size_t& length,
            Nanos timeout);

  // Zero-copy sending, for a sender that can write its message in place. reserve() waits (as
  // send() does) for room for a `length`-byte message and returns that space; fill all of it,
  // then commit() publishes it as one message, in the same record format as send(), and rings
  // the peer as the policy says. Nothing is visible to the peer before commit(). A payload of
  // wire::kAlignedPayloadMin (256) bytes or more is written in place, in the ring (two spans
  // when it wraps around the ring's end). A smaller one shares its header's cache line, which
  // the receiver polls: it is staged in the endpoint and commit() writes it with the header in
  // one burst, as send() does (writing it in place under a polling receiver cost a 64 B round
  // trip about 25 %, BENCHMARKS.md). While a reservation is outstanding send() returns misuse
  // (or the failure that ended the reservation), and reserve() again replaces it (its bytes
  // are never published: the way to abandon one). commit() without a reservation is misuse;
  // commit() after this endpoint failed or shut its sending side returns why and drops the
  // reservation. Sending thread only.
  Errc reserve(std::size_t length, WritableRecord& space, Nanos timeout = kForever);
  Errc commit();
  // Zero-copy receiving. peek() waits (as recv() does) for the next message and returns it in
  // place, read-only, its header validated once as recv() validates it; release() frees its
  // space for the peer and moves on to the next. peek() again before release() returns the same
  // message. While a view is outstanding recv() returns misuse (or the failure that ended the
  // view); release() without a view is misuse. The bytes stay in memory the peer can write: a
  // hostile peer can change them under the view, so read what you check once (copy it), as
  // with any shared memory. No view outlives this endpoint's failure or close: release(),
  // peek() and recv() then return why and end the view (a dead or closed peer's complete
  // records stay valid and are released normally). Receiving thread only.
  Errc peek(ReadableRecord& record, Nanos timeout = kForever);
  Errc release();

  // Event-loop use (a simulator, an epoll loop) instead of blocking in send/recv:
  // can_send: would a message of this size fit now? (false also once the channel failed: the
  // next send reports why).
  bool can_send(std::size_t message_bytes);
  // Ask the peer to ring this endpoint's doorbell when `reason` becomes ready (data to read;
  // room for a message of `message_bytes`), with the same lost-wake-up re-check as a blocking
  // wait. would_block: registered, sleep until the doorbell rings (under polling nobody rings:
  // poll). ok: it became ready meanwhile; no ring will come, go on now.
  Errc request_wake(Wake reason, std::size_t message_bytes = 0);

  // Creator: wait until side 1 is live.
  Errc wait_for_peer(Nanos timeout);
  // No more sends; the peer receives everything already sent, then peer_closed.
  Errc shutdown_send();
  // Orderly teardown: shutdown_send(), then wait until the peer consumed everything this side
  // sent (or died, or timeout). Incoming messages not received by then are counted as discarded.
  Errc close(Nanos timeout);

  // Liveness and timers, for the platform's ticker (any thread).
  void heartbeat();
  // ATW: ring the peer if a batch is pending and its window t has expired at `now`.
  void flush();
  // The platform learnt by its own means (socket hang-up, unmap notification) that the peer
  // is gone.
  void mark_peer_dead(std::string_view why);

  ChannelStats stats() const;
  int side() const { return side_; }
  NotifyPolicy policy() const { return policy_; }
  std::uint32_t max_message() const { return max_message_; }
  Nanos atw_window() const { return notify_.atw_window; }
  std::uint64_t peer_platform_address() const;
  bool peer_live() const;
  // The peer left for good (it closed, or its endpoint was destroyed): the area may be reused.
  bool peer_detached() const;
  // Bytes this side sent that the peer has not consumed yet (as published by the peer).
  std::uint64_t unconsumed_outgoing() const;
  // Reads back the records this side sent that the peer has not consumed (as far as the area
  // says), oldest first, each copied out and checked before `visit` sees it; stops early when
  // `visit` returns false. For handing pending data to another path when this channel no
  // longer reaches the peer: a migrated guest's region is a copy the peer never sees. The area
  // is hostile (after a migration its peer-written half is stale), so the peer's consumed index
  // is only a starting hint: an index outside what this side produced starts from the last
  // validated one, and a record that fails a check ends the walk with protocol_violation.
  Errc read_back_unconsumed(const std::function<bool(std::span<const std::byte>)>& visit);
  // Why the endpoint failed: names the ring, position and field. Empty when healthy.
  std::string error_detail() const;
  Errc failure() const { return failure_.load(std::memory_order_acquire); }

private:
  struct Geometry {
    std::uint32_t ring_bytes[2];
    std::uint64_t ring_offset[2];
    std::uint32_t max_message;
    std::uint64_t generation;
    std::uint32_t features; // wire::kFeature* bits
  };
  Channel(SharedRegion area, const Geometry& geometry, int side, NotifyPolicy policy,
          const ChannelConfig& config, Doorbell& doorbell, Clock& clock);

  // The ring this side produces into, with the sending thread's counters: one cache-line
  // aligned block, so the sending and the receiving thread never write the same line.
  struct alignas(wire::kCacheLine) TxSide {
    std::byte* data;
    std::uint64_t mask;
    std::uint64_t size;
    std::uint64_t position = 0;        // next record goes here (authoritative: only we write)
    std::uint64_t cached_consumed = 0; // last validated consumed index of the peer
    bool reserved = false;             // reserve() handed out the record at `position`
    std::uint32_t reserved_length = 0; // its payload length
    // Where a small reserved payload is written until commit() (see reserve()).
    alignas(wire::kCacheLine) std::byte staging[wire::kAlignedPayloadMin];
    // Written by the sending thread only; read by stats() (relaxed: counts order nothing).
    std::atomic<std::uint64_t> messages{0}, bytes{0}, ring_full{0}, too_large{0};
  };
  // The ring this side consumes from, with the receiving thread's counters.
  struct alignas(wire::kCacheLine) RxSide {
    std::byte* data;
    std::uint64_t mask;
    std::uint64_t size;
    std::uint64_t position = 0;  // next record to read
    std::uint64_t published = 0; // last consumed index we published
    std::uint64_t publish_every; // publish at least every this many bytes
    bool viewing = false;        // peek() handed out the record at `position`
    std::uint32_t view_length = 0;
    // Written by the receiving thread only; read by stats() (relaxed: counts order nothing).
    std::atomic<std::uint64_t> messages{0}, bytes{0};
  };

  Errc fail(Errc code, std::string detail);
  template <class Try>
  Errc transmit(std::size_t length, Nanos timeout, Try try_once);
  template <class Try>
  Errc receive(Nanos timeout, Try try_once);
  template <class Try>
  Errc closed_before_death(Try try_once);
  Errc try_send(std::span<const std::byte> head, std::span<const std::byte> body);
  Errc try_reserve(std::uint32_t length, WritableRecord& space);
  void write_payload(std::uint64_t start, std::uint64_t end, std::uint32_t length,
                     std::span<const std::byte> head, std::span<const std::byte> body);
  void publish_record(std::uint64_t start, std::uint64_t end, std::uint32_t length,
                      std::uint64_t check);
  Errc try_recv(std::span<std::byte> head, std::span<std::byte> body, std::size_t& length);
  Errc try_peek(ReadableRecord& record);
  Errc view_ending_failure() const;
  Errc next_record(std::uint32_t& length);
  Errc record_violation(std::uint64_t pos, std::uint64_t header, std::uint64_t record);
  Errc check_record(std::uint32_t length, std::span<const std::byte> head,
                    std::span<const std::byte> body);
  std::uint64_t record_check(std::uint64_t header, std::span<const std::byte> head,
                             std::span<const std::byte> body) const;
  Errc published_but_empty();
  Errc closing_index_check();
  void set_own_state(wire::EndpointState state);
  void check_own_line();
  void consume_record(std::uint32_t length);
  Errc tx_room(std::uint64_t need);
  void publish_consumed();
  void wake_space_waiter();
  void notify_data_sent();
  bool rings_on_request(Wake reason) const;
  std::atomic_ref<std::uint32_t> request_flag(Wake reason);
  Errc peer_state_check(Nanos now, Wake reason, Errc otherwise);
  Errc peer_state_order(std::uint32_t state);
  Errc end_of_stream();
  Errc after_end_of_stream();
  template <class Ready>
  Errc wait_for(Wake reason, Nanos timeout, Ready ready, bool spin_first);
  Nanos deadline_after(Nanos timeout);

  wire::ControlArea* control_;
  Geometry geometry_;
  int side_;
  NotifyPolicy policy_;
  NotifyConfig notify_;
  LivenessConfig liveness_;
  std::function<bool(std::uint64_t)> admit_;
  std::uint32_t max_message_;
  std::uint32_t prefix_;      // bytes before each payload: header (and check word when checked)
  bool checked_;              // every record carries a CRC32C (wire::kFeatureRecordCrc32c)
  std::uint64_t own_address_; // the platform address this endpoint wrote into its line
  Doorbell& doorbell_;
  Clock& clock_;
  TxSide tx_;
  RxSide rx_;

  // ATW batching state, shared by the sending thread and flush() callers.
  std::atomic<std::uint32_t> unnotified_{0}; // relaxed: a count; races only add a spare ring
  std::atomic<Nanos> first_unnotified_{0};   // relaxed: a timestamp read with its count

  // Liveness bookkeeping, shared by the sending and receiving threads.
  std::atomic<std::uint64_t> seen_peer_heartbeat_{0}; // relaxed: a hint, re-read every check
  std::atomic<Nanos> peer_heartbeat_changed_at_{0};   // relaxed: same
  std::atomic<Nanos> last_own_heartbeat_{0};          // relaxed: only paces heartbeat()
  std::atomic<bool> peer_was_live_{false};            // relaxed: a one-way latch
  std::atomic<bool> peer_progressed_{false};          // relaxed: the ring moved since last check
  std::atomic<bool> send_shut_{false};                // relaxed: read by the sending thread
  std::atomic<bool> rx_eof_{false};                   // relaxed: read by the receiving thread
  std::atomic<std::uint32_t> peer_state_seen_{0};     // relaxed: highest peer state seen
  mutable std::mutex own_line_mutex_;    // orders our state changes against check_own_line()
  std::uint32_t own_state_;              // what this endpoint last wrote as its state (guarded)
  std::uint64_t discarded_on_close_ = 0; // written by close() only

  std::atomic<Errc> failure_{Errc::ok}; // release/acquire: the detail is written before it
  mutable std::mutex detail_mutex_;     // guards detail_ (error path only)
  std::string detail_;

  // Counters written by either thread (waits, notifications): relaxed fetch_add, counts only.
  struct Counters {
    std::atomic<std::uint64_t> data_notifications{0}, space_notifications{0}, sleeps{0}, wakeups{0},
        wait_timeouts{0};
  } counters_;
};

} // namespace ivmc
