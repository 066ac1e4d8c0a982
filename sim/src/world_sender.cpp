// The sender's state machine: one frame per step, its CPU time from the cost models, flow
// control through ring space or the remote window.
#include "world.hpp"

#include <fmt/format.h>

namespace ivmc::sim {

// ---------------------------------------------------------------------------------------------
// Sender: one frame per step; the step's CPU time is the cost model's, after which the next
// step runs.

void World::sender_wake(Pipe& p, Nanos delay) {
  if (!p.tx_waiting) return;
  p.tx_waiting = false;
  model_.at(model_.now_ns() + delay, [this, &p] { sender_step(p); });
}

void World::schedule_flush(Pipe& p) {
  if (policy_ != NotifyPolicy::atw || p.flush_pending || p.tx_gen == nullptr) return;
  p.flush_pending = true;
  const Nanos window = std::max<Nanos>(ns(s_.channel.atw_window_us * 1e3), 1);
  model_.at(model_.now_ns() + window, [this, &p] {
    p.flush_pending = false;
    if (p.tx_gen != nullptr && !p.tx_gen->broken) {
      const std::uint64_t before = p.tx_gen->tx_bell.rings;
      p.tx_gen->tx->flush();
      if (p.tx_gen->tx_bell.rings == before && p.tx_gen->tx->unconsumed_outgoing() > 0) {
        schedule_flush(p); // the batch is younger than the window: look again later
      }
    }
  });
}

void World::sender_step(Pipe& p) {
  if (p.tx_busy || p.tx_waiting) return;
  const Topology& topo = model_.topology();
  if (!topo.has_vm(p.from) || !topo.has_vm(p.to)) {
    // Not created yet (look again in a millisecond), or shut down (the traffic ends).
    if (p.gone || (p.existed && model_.now_ns() > 0)) {
      p.gone = true;
      p.outbox.clear();
      return;
    }
    if (!p.retry_pending && model_.now_ns() < end_) {
      p.retry_pending = true;
      model_.at(model_.now_ns() + kMs, [this, &p] {
        p.retry_pending = false;
        sender_step(p);
      });
    }
    return;
  }
  p.existed = true;
  if (p.outbox.empty() && p.refill) p.refill();
  if (p.outbox.empty()) return;
  const Nanos now = model_.now_ns();
  Pipe::Outgoing& m = p.outbox.front();
  if (m.next_piece == 0) {
    // Cut into packets only where it will travel as packets: on a channel below IP. The
    // hypervisor path takes the whole send (its NIC model segments it).
    const bool local = !p.local_forbidden && (p.sender->path() == PathKind::local ||
                                              source_->believes_co_resident(p.from, p.to));
    m.pieces = local ? pieces_for(m.bytes) : 1;
  }
  const std::size_t whole = m.bytes;
  const std::size_t piece_bytes =
      m.pieces == 1 ? whole
                    : std::min<std::size_t>(static_cast<std::size_t>(costs_.mss_bytes),
                                            whole - m.next_piece *
                                                        static_cast<std::size_t>(costs_.mss_bytes));
  const std::size_t frame = std::max(piece_bytes, kMetaBytes);
  // Flow control before the step: ring space on the local path, the window on the remote one.
  constexpr std::size_t kLinkOverhead = 16 + 40; // the link header, and room for a path_end
  if (p.sender->path() == PathKind::local && p.tx_gen != nullptr && !p.tx_gen->broken &&
      frame + kLinkOverhead <= p.tx_gen->tx->max_message() &&
      !p.tx_gen->tx->can_send(frame + kLinkOverhead)) {
    if (p.tx_gen->tx->request_wake(Wake::space, frame + kLinkOverhead) == Errc::would_block) {
      p.tx_waiting = true;
      ++sleeps_;
      if (policy_ == NotifyPolicy::polling) { // nobody rings: the sender polls the index
        p.tx_waiting = false;
        model_.at(now + ns(costs_.shm_poll_detect_ns * 4) + poll_wait(),
                  [this, &p] { sender_step(p); });
      }
      return;
    }
  }
  // UDP decides per datagram (all its fragments or none), TCP per segment.
  const std::size_t needs = p.proto == Proto::tcp ? frame : m.next_piece == 0 ? whole : 0;
  if (p.sender->path() == PathKind::remote && needs > 0 &&
      p.remote.in_flight_bytes + needs > static_cast<std::uint64_t>(costs_.socket_buffer_bytes) &&
      p.remote.in_flight_bytes > 0) {
    if (p.proto == Proto::tcp) {
      p.tx_waiting = true; // the receiver's reads open the window again
      return;
    }
    // UDP: the datagram finds the buffers full and is dropped (netperf's UDP_STREAM counts
    // what arrives); the sender still paid for the call.
    ++udp_dropped_;
    p.outbox.pop_front();
    p.tx_busy = true;
    model_.at(now + ns(costs_.syscall_ns), [this, &p] {
      p.tx_busy = false;
      sender_step(p);
    });
    return;
  }
  // The step itself: a real link send, timed by the cost model of the path it took.
  FrameMeta meta{m.id, m.next_piece, m.pieces, m.created};
  // A frame is its meta, then filler up to its size (in a buffer kept by the pipe).
  if (p.tx_buffer.size() < frame) p.tx_buffer.resize(frame);
  std::memcpy(p.tx_buffer.data(), &meta, kMetaBytes);
  const std::span<const std::byte> body(p.tx_buffer.data(), frame);
  const Nanos local_cost = local_send_cost(p, frame, m.next_piece == 0);
  const Nanos remote_cost = remote_send_cost(p, frame);
  const std::uint64_t probes_before = p.sender->stats().probes;
  const std::uint64_t fallbacks_before = p.sender->stats().fallbacks;
  const PathKind before = p.sender->path();
  // Where the data goes is only known inside send(); the doorbell and the remote path use the
  // offset of the path it most likely takes (fixed below for the one it took).
  p.send_offset = before == PathKind::local ? local_cost : remote_cost;
  const bool want_local = !p.local_forbidden && (p.sender->path() == PathKind::local ||
                                                 source_->believes_co_resident(p.from, p.to));
  if (want_local && before == PathKind::remote) p.send_offset = local_cost;
  Generation* gen = p.tx_gen;
  const std::uint64_t rings_before = gen ? gen->tx_bell.rings : 0;
  const Errc e = p.sender->send(body, 0);
  if (e != Errc::ok) {
    throw std::logic_error(fmt::format("sim: link send failed: {}", to_string(e)));
  }
  ++sends_;
  if (const auto w = windows_->open_window(p.from, p.to, now)) {
    ++sends_in_window_;
    if (s_.output.changes) ++change_stats(w->change).stale_sends;
  }
  const bool went_local = p.sender->stats().sent_local > 0 && p.sender->path() == PathKind::local &&
                          p.sender->stats().fallbacks == fallbacks_before;
  Nanos cost = went_local ? local_cost : remote_cost;
  if (p.sender->stats().fallbacks != fallbacks_before) cost += local_cost; // the failed try
  cost += ns(static_cast<double>(p.sender->stats().probes - probes_before) *
             s_.membership.probe_cost_us * 1e3);
  gen = p.tx_gen;
  if (gen != nullptr && went_local) {
    if (gen->tx_bell.rings != rings_before) cost += ns(costs_.shm_doorbell_ns + hvm_exit_ns());
    // A poller (or a spinner within its budget) sees the record without a ring.
    if (p.rx_gen == gen &&
        (p.rx_state == Pipe::RxState::polling || p.rx_state == Pipe::RxState::spinning)) {
      receiver_wake(p, local_cost + poll_detect(), false);
    }
    schedule_flush(p);
  }
  if (++m.next_piece >= m.pieces) p.outbox.pop_front();
  p.tx_busy = true;
  model_.at(now + std::max<Nanos>(cost, 1), [this, &p] {
    p.tx_busy = false;
    sender_step(p);
  });
}

} // namespace ivmc::sim
