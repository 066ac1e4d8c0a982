// The receiver's state machine: one frame per step; finding nothing, it polls, spins or sleeps
// on the doorbell as the notification policy says.
#include "world.hpp"

namespace ivmc::sim {

// ---------------------------------------------------------------------------------------------
// Receiver: one frame per step.

void World::receiver_wake(Pipe& p, Nanos delay, bool by_doorbell) {
  model_.at(model_.now_ns() + delay, [this, &p, by_doorbell] {
    if (p.rx_state == Pipe::RxState::busy) return; // it looks again when it is done
    if (by_doorbell && p.rx_state == Pipe::RxState::sleeping) ++doorbell_wakeups_;
    receiver_step(p);
  });
}

void World::receiver_step(Pipe& p) {
  const Nanos now = model_.now_ns();
  std::size_t n = 0;
  const Errc e = p.receiver->recv(p.rx_buffer, n, 0);
  if (e == Errc::ok) {
    FrameMeta meta;
    std::memcpy(&meta, p.rx_buffer.data(), kMetaBytes);
    const bool local = p.receiver->path() == PathKind::local && p.rx_gen != nullptr;
    if (local && p.rx_gen->broken) recovered_bytes_ += n;
    const bool last = meta.piece + 1 >= meta.pieces;
    Nanos cost = local ? local_recv_cost(p, n, last) : remote_recv_cost(p, n);
    if (p.rx_rested) cost += ns(costs_.irq_ns + hvm_exit_ns());
    p.rx_rested = false;
    if (!local) {
      // The window opens: a sender waiting on it goes on (its ACK crosses the same path).
      sender_wake(p, ns(costs_.wakeup_latency_ns));
    } else if (policy_ == NotifyPolicy::polling) {
      sender_wake(p, poll_detect()); // a polling sender sees the index move
    }
    p.rx_state = Pipe::RxState::busy;
    p.rx_meta = meta; // what the frame's processing delivers when it is done
    p.rx_frame = n;
    p.rx_last = last;
    model_.at(now + std::max<Nanos>(cost, 1), [this, &p] { // small capture: no allocation
      p.rx_state = Pipe::RxState::idle;
      if (p.rx_last && p.on_message) p.on_message(p.rx_meta, p.rx_frame);
      receiver_step(p);
    });
    return;
  }
  if (e == Errc::peer_closed) {
    p.rx_state = Pipe::RxState::idle;
    return;
  }
  // Nothing to read now. On the local path: poll, spin, or ask for a ring and sleep.
  Generation* g = p.receiver->path() == PathKind::local ? p.rx_gen : nullptr;
  if (g == nullptr || g->broken) {
    p.rx_state = Pipe::RxState::sleeping; // remote arrivals and breaks wake it
    p.rx_rested = true;
    return;
  }
  switch (policy_) {
  case NotifyPolicy::polling:
    p.rx_state = Pipe::RxState::polling;
    return;
  case NotifyPolicy::spin_then_block: {
    p.rx_state = Pipe::RxState::spinning;
    const std::uint64_t token = ++p.rx_spin_token;
    model_.at(now + ns(s_.channel.spin_budget_us * 1e3), [this, &p, g, token] {
      if (p.rx_state != Pipe::RxState::spinning || p.rx_spin_token != token) return;
      if (p.rx_gen != g || g->rx->request_wake(Wake::data) == Errc::ok) {
        receiver_step(p);
        return;
      }
      p.rx_state = Pipe::RxState::sleeping;
      p.rx_rested = true;
      ++sleeps_;
    });
    return;
  }
  default:
    if (g->rx->request_wake(Wake::data) == Errc::ok) { // it arrived meanwhile
      model_.at(now, [this, &p] { receiver_step(p); });
      p.rx_state = Pipe::RxState::idle;
      return;
    }
    p.rx_state = Pipe::RxState::sleeping;
    p.rx_rested = true;
    ++sleeps_;
  }
}

} // namespace ivmc::sim
