// A VM process's link ends: for each pipe it sends on, a LinkSender over its current host's
// channel and its TCP path to the receiver; for each pipe it receives on, a LinkReceiver that
// attaches to the instances the sender announces. Co-residency comes from the board (the
// orchestrator's membership source's views), the truth for prevention probes too, and every
// Table IV operation is classified by the board's race flags. Private to backends/host.
#pragma once

#include "ivmc/core/link.hpp"
#include "ivmc/core/race_ledger.hpp"
#include "ivmc/host/board.hpp"
#include "ivmc/host/control.hpp"
#include "ivmc/posix/clock.hpp"
#include "ivmc/posix/tcp_path.hpp"
#include "residence.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

namespace ivmc::host {

// The host's shared-memory pool, as a VM process sees it: the run's process holds each host's
// SharedPool; a sender asks it for its channel's ring size when it sets a channel up, and
// tells it when it lets go. Thread-safe: link ends on several threads ask at once; the VM's
// control thread delivers the answers (deliver()).
class PoolClient {
public:
  explicit PoolClient(ControlSocket& control) : control_(control) {}
  // The ring size granted for pipe `pipe` to `peer` on `host`, or nothing (refused: no room).
  // `renew`: the pair holds a channel already and wants its new size.
  std::optional<std::uint32_t> acquire(std::uint32_t pipe, VmId peer, HostId host, bool renew);
  void release(std::uint32_t pipe, VmId peer, HostId host);
  void demand(std::uint32_t pipe, VmId peer, HostId host, std::uint64_t bytes);
  // The control thread hands over a pool_grant / pool_refuse.
  void deliver(const Message& reply);

private:
  void send(const Message& m);
  ControlSocket& control_;
  std::mutex mutex_; // guards next_id_, replies_, and sends on the control socket
  std::condition_variable replied_;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, std::optional<std::uint32_t>> replies_;
};

// What every link end of one VM process shares.
struct VmContext {
  VmContext(VmId self_id, const Board& b, Residence& r) : self(self_id), board(b), residence(r) {}
  VmId self;
  const Board& board;
  Residence& residence;
  ChannelTotals totals;
  ChannelConfig channel; // ring size and notification policy of the channels this VM creates
  LinkConfig link;
  PoolClient* pool = nullptr; // the host's pool, when the scenario has one
  posix::MonotonicClock clock;

  void record(LinkOperation op, VmId peer, Errc outcome, std::uint64_t bytes);
  // A link end's view of `peer` (the board's), its probe (the board's truth), and its Table IV
  // operations classified by the board's race flag for (this VM, peer).
  void install_membership(LinkEnvironment& env, VmId peer);
  RaceLedger ledger() const;

private:
  mutable std::mutex ledger_mutex_; // guards ledger_ (link ends run on several threads)
  RaceLedger ledger_;
};

class SenderEnd {
public:
  // `local_allowed`: the channel is enabled and the trust list admits the pair.
  SenderEnd(VmContext& vm, std::uint32_t pipe, VmId peer, bool local_allowed, bool reestablish,
            posix::TcpPath remote);
  ~SenderEnd();
  LinkSender& link() { return *link_; }
  VmId peer() const { return peer_; }
  std::uint32_t pipe() const { return pipe_; }
  std::uint64_t channels_opened() const { return channels_opened_; }
  // The channel of the local instance in use, if any (for the end of a stream).
  Channel* local_channel() { return local_ ? &local_->channel() : nullptr; }
  // The pool resized this pipe's pair (any thread); the sending thread moves to a channel of
  // the new size at its next step (maintain()).
  void request_renew() { renew_wanted_.store(true, std::memory_order_relaxed); } // a hint
  // The sending thread, between messages: a pending resize, and the pool's demand report.
  void maintain();
  // The stream ended: no more renewals (the receiver may have stopped reading).
  void finished() { finished_ = true; }

private:
  LocalPath open_local(bool renew);
  void release_local();

  VmContext& vm_;
  std::uint32_t pipe_;
  VmId peer_;
  bool local_allowed_;
  bool reestablish_;
  posix::TcpPath remote_;
  std::unique_ptr<LocalInstance> local_;
  std::unique_ptr<LocalInstance> next_; // a renewal's replacement until the old one goes
  std::optional<HostId> pool_host_;     // the host whose pool this pair holds a share of
  std::uint64_t epoch_ = 0;
  std::uint64_t channels_opened_ = 0;
  Nanos next_demand_ = 0;
  std::uint32_t ring_bytes_ = 0; // of the instance in use
  bool finished_ = false;
  std::atomic<bool> renew_wanted_{false}; // relaxed: a hint, acted on by the sending thread
  std::unique_ptr<LinkSender> link_;
};

class ReceiverEnd {
public:
  ReceiverEnd(VmContext& vm, std::uint32_t pipe, VmId peer, posix::TcpPath remote);
  ~ReceiverEnd();
  LinkReceiver& link() { return *link_; }
  VmId peer() const { return peer_; }
  std::uint32_t pipe() const { return pipe_; }

private:
  FramePath* find_local(std::uint64_t epoch, Nanos timeout);
  void release_local();

  VmContext& vm_;
  std::uint32_t pipe_;
  VmId peer_;
  posix::TcpPath remote_;
  std::map<std::uint64_t, std::unique_ptr<LocalInstance>> instances_; // by epoch
  std::uint64_t current_ = 0;
  // A region the server handed over whose channel is not attached yet.
  struct Joined {
    std::uint64_t epoch = 0;
    const Attachment* attachment = nullptr;
    std::shared_ptr<const kvm::PrivateRegion> region;
  } joined_;
  std::unique_ptr<LinkReceiver> link_;
};

} // namespace ivmc::host
