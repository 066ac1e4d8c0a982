// A VM process's link ends: for each pipe it sends on, a LinkSender over its current host's
// channel and its TCP path to the receiver; for each pipe it receives on, a LinkReceiver that
// attaches to the instances the sender announces. Co-residency comes from the board (the
// orchestrator's membership source's views), the truth for prevention probes too, and every
// Table IV operation is classified by the board's race flags. Private to backends/host.
#pragma once

#include "ivmc/core/link.hpp"
#include "ivmc/core/race_ledger.hpp"
#include "ivmc/host/board.hpp"
#include "ivmc/posix/clock.hpp"
#include "ivmc/posix/tcp_path.hpp"
#include "residence.hpp"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

namespace ivmc::host {

// Where pipe p's instance of epoch e lives in every host's region: a ring of slots per pipe,
// so an instance a lagging receiver still reads is never overwritten by the next one.
struct SlotPlan {
  std::size_t slot_bytes = 0;
  unsigned slots_per_pipe = 4;
  std::size_t offset(std::uint32_t pipe, std::uint64_t epoch) const {
    return (static_cast<std::size_t>(pipe) * slots_per_pipe + (epoch - 1) % slots_per_pipe) *
           slot_bytes;
  }
  std::size_t region_bytes(std::uint32_t pipes) const {
    return static_cast<std::size_t>(pipes) * slots_per_pipe * slot_bytes;
  }
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
  SlotPlan slots;
  posix::MonotonicClock clock;

  void record(LinkOperation op, VmId peer, Errc outcome, std::uint64_t bytes);
  RaceLedger ledger() const;

private:
  mutable std::mutex ledger_mutex_; // guards ledger_ (link ends run on several threads)
  RaceLedger ledger_;
};

class SenderEnd {
public:
  // `local_allowed`: the channel is enabled and the trust list admits the pair.
  SenderEnd(VmContext& vm, std::uint32_t pipe, VmId peer, bool local_allowed, posix::TcpPath remote);
  ~SenderEnd();
  LinkSender& link() { return *link_; }
  VmId peer() const { return peer_; }
  std::uint32_t pipe() const { return pipe_; }
  std::uint64_t channels_opened() const { return channels_opened_; }
  // The channel of the local instance in use, if any (for the end of a stream).
  Channel* local_channel() { return local_ ? &local_->channel() : nullptr; }

private:
  LocalPath open_local();
  void release_local();

  VmContext& vm_;
  std::uint32_t pipe_;
  VmId peer_;
  bool local_allowed_;
  posix::TcpPath remote_;
  std::unique_ptr<LocalInstance> local_;
  std::uint64_t epoch_ = 0;
  std::uint64_t channels_opened_ = 0;
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
  std::unique_ptr<LinkReceiver> link_;
};

} // namespace ivmc::host
