// The scenario's workloads as pipes: streams (saturating, or paced evenly or as a Poisson
// process) and request/response transactions, with their per-message accounting.
#include "world.hpp"

namespace ivmc::sim {

// ---------------------------------------------------------------------------------------------
// Set-up

void World::setup_workloads() {
  for (std::size_t i = 0; i < s_.workloads.size(); ++i) {
    const WorkloadConfig& w = s_.workloads[i];
    const bool rr = experiment::is_request_response(w.kind);
    const Proto proto = experiment::is_udp(w.kind) ? Proto::udp : Proto::tcp;
    const VmId a = vm_id(w.from), b = vm_id(w.to);
    const Nanos start = ns(w.start_s * 1e9);
    const Nanos stop = w.stop_s < 0 ? end_ : std::min(end_, ns(w.stop_s * 1e9));
    auto fwd = std::make_unique<Pipe>();
    build_pipe(*fwd, a, b, proto);
    Pipe* f = fwd.get();
    add_pipe(std::move(fwd));
    Pipe* back = nullptr;
    if (rr) {
      auto bw = std::make_unique<Pipe>();
      build_pipe(*bw, b, a, proto);
      back = bw.get();
      add_pipe(std::move(bw));
    }
    workload_pipes_.push_back({f, back});
    const std::size_t bytes = w.message_bytes;
    for (Pipe* p : {f, back}) { // a frame is at most a message (or its meta) plus a marker
      if (p != nullptr) p->rx_buffer.resize(std::max(bytes, kMetaBytes) + 64);
    }
    auto message = [this, bytes](Nanos created) { // cut into pieces when it starts (sender_step)
      return Pipe::Outgoing{next_message_++, bytes, created, 0, 1};
    };
    WorkloadStats* st = &wstats_[i];
    if (!rr) {
      if (w.rate_per_s > 0) { // offered load: evenly spaced, or Poisson arrivals
        const double rate = w.rate_per_s;
        const bool poisson = w.arrivals == Arrivals::poisson;
        // The pacer lives as long as the world; each queued tick holds (pacer, time), which
        // std::function keeps inline: no allocation per message.
        pacers_.push_back(std::make_unique<std::function<void(Nanos)>>());
        std::function<void(Nanos)>* tick = pacers_.back().get();
        *tick = [this, f, rate, poisson, stop, message, tick](Nanos t) {
          if (t > stop) return;
          // A VM that does not exist (not created yet, or shut down) offers nothing: no
          // backlog builds up for it to send at once when it appears.
          const Topology& topo = model_.topology();
          if (topo.has_vm(f->from) && topo.has_vm(f->to)) {
            f->outbox.push_back(message(t));
            sender_step(*f);
          }
          const Nanos gap =
              std::max<Nanos>(ns(1e9 * (poisson ? rng_.exponential(rate) : 1.0 / rate)), 1);
          model_.at(t + gap, [tick, next = t + gap] { (*tick)(next); });
        };
        model_.at(start, [tick, start] { (*tick)(start); });
      } else { // as fast as the sender can
        f->refill = [this, f, stop, message] {
          if (model_.now_ns() < stop) f->outbox.push_back(message(model_.now_ns()));
        };
        model_.at(start, [this, f] { sender_step(*f); });
      }
      f->on_message = [this, st, bytes](const FrameMeta& meta, std::size_t) {
        const Nanos now = model_.now_ns();
        if (!measured(meta.created) || !measured(now)) return;
        ++st->messages;
        st->bytes += bytes;
        st->latency.record(now - meta.created);
      };
    } else {
      // Request/response: the client sends a request, the server answers it, the client sends
      // the next one when the answer is complete.
      auto next_request = [this, f, stop, message] {
        if (model_.now_ns() >= stop) return;
        f->outbox.push_back(message(model_.now_ns()));
        sender_step(*f);
      };
      model_.at(start, next_request);
      f->on_message = [this, back, message](const FrameMeta& meta, std::size_t) {
        back->outbox.push_back(message(meta.created)); // the response carries the request's time
        sender_step(*back);
      };
      back->on_message = [this, st, bytes, next_request](const FrameMeta& meta, std::size_t) {
        const Nanos now = model_.now_ns();
        if (measured(meta.created) && measured(now)) {
          ++st->transactions;
          ++st->messages;
          st->bytes += 2 * bytes;
          st->latency.record(now - meta.created);
        }
        next_request();
      };
    }
  }
}

} // namespace ivmc::sim
