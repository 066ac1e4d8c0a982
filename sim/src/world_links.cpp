// The simulated world's links: a workload direction's pipe (LinkSender, LinkReceiver, remote
// path), its local instances (a real channel in heap memory, from the host's pool if any),
// their release and their breaking on migration, pool rebalancing, and the race ledger's
// records of link operations.
#include "world.hpp"

#include <fmt/format.h>

namespace ivmc::sim {

// ---------------------------------------------------------------------------------------------
// Links

void World::build_pipe(Pipe& p, VmId from, VmId to, Proto proto) {
  p.from = from;
  p.to = to;
  p.proto = proto;
  p.remote.clock = &model_.clock();
  p.remote.arrival_of = [this, &p](std::size_t frame) {
    return remote_arrival(p, frame, model_.now_ns() + p.send_offset);
  };
  p.remote.on_enqueue = [this, &p](Nanos arrival) {
    model_.at(arrival, [this, &p] { receiver_wake(p, 0, false); });
  };
  // The channel is only for VMs co-resident at start when the system cannot follow migration.
  const Topology& topo = model_.topology();
  const bool both_exist = topo.has_vm(from) && topo.has_vm(to);
  p.local_forbidden = !s_.channel.enabled || !trusted(from, to) ||
                      (s_.channel.tcp_only && proto == Proto::udp) ||
                      (!s_.channel.migration && !(both_exist && topo.co_resident(from, to)));
  if (!trusted(from, to)) ++trust_refusals_;

  LinkEnvironment tx;
  tx.remote = &p.remote;
  tx.open_local = [this, &p](Nanos) { return open_local(p, false); };
  tx.renew_local = [this, &p](Nanos) { return open_local(p, true); };
  tx.release_local = [this, &p] { release_local(p); };
  tx.believes_co_resident = [this, &p] { return source_->believes_co_resident(p.from, p.to); };
  tx.view_version = [this, &p] { return source_->view_version(p.from); };
  tx.probe_co_resident = [this, &p] {
    ++link_probes_;
    const Topology& t = model_.topology();
    return t.has_vm(p.from) && t.has_vm(p.to) && t.co_resident(p.from, p.to);
  };
  tx.on_operation = [this, &p](LinkOperation op, Errc e, std::uint64_t bytes) {
    record_operation(p.from, p.to, op, e, bytes);
  };
  LinkEnvironment rx;
  rx.remote = &p.remote;
  rx.find_local = [&p](std::uint64_t epoch, Nanos) -> FramePath* {
    for (auto& g : p.generations) {
      if (g->epoch == epoch) {
        p.rx_gen = g.get();
        // Older instances can never be read again: free their memory once the sender let go.
        std::erase_if(p.generations, [&](const std::unique_ptr<Generation>& old) {
          return old->epoch < epoch && old->released && old.get() != p.tx_gen;
        });
        return p.rx_gen->rx_path.get();
      }
    }
    return nullptr;
  };
  rx.on_operation = [this, &p](LinkOperation op, Errc e, std::uint64_t bytes) {
    record_operation(p.to, p.from, op, e, bytes);
  };
  LinkConfig cfg;
  cfg.race = race_;
  cfg.stale_timeout = ns(s_.membership.stale_timeout_us * 1e3);
  p.sender = std::make_unique<LinkSender>(tx, cfg, model_.clock());
  p.receiver = std::make_unique<LinkReceiver>(rx, model_.clock());
}

LocalPath World::open_local(Pipe& p, bool renew) {
  const Topology& topo = model_.topology();
  // Shared memory exists only between VMs that really are on one host, whatever anyone
  // believes: an establishment against a stale view is deferred (Table IV, row 1).
  if (p.local_forbidden || !topo.has_vm(p.from) || !topo.has_vm(p.to) ||
      !topo.co_resident(p.from, p.to)) {
    return {};
  }
  if (!s_.channel.migration && p.ever_local && !renew) return {}; // never re-established
  std::uint32_t ring = s_.channel.ring_kib << 10;
  const HostId host = topo.host_of(p.from);
  const PairId pair = pair_id(p.from, p.to);
  if (!pools_.empty()) {
    SharedPool& pool = *pools_[host];
    if (!pool.has_pair(pair)) {
      if (!pool.add_pair(pair, model_.now_ns())) {
        ++pool_refusals_;
        return {};
      }
      if (pool.config().policy == PoolPolicy::proportional) {
        // A new pair starts with what is free, at most its fair share; the next rebalance
        // corrects it.
        pool.report_demand(pair, pool.config().chunk_bytes, model_.now_ns());
        (void)pool.rebalance(model_.now_ns());
      }
    }
    if (!renew) ++pool_refs_[pair];
    ring = static_cast<std::uint32_t>(std::min<std::uint64_t>(pool.ring_bytes(pair), 1u << 30));
    if (ring < 4096) return {}; // no room until the next rebalance
  }
  auto g = std::make_unique<Generation>();
  g->epoch = p.generations.empty() ? 1 : p.generations.back()->epoch + 1;
  g->ring_bytes = ring;
  g->memory = std::make_unique<ChannelMemory>(Channel::area_bytes(ring, ring));
  ChannelConfig cc;
  cc.ring_bytes = ring;
  cc.notify.policy = policy_;
  cc.notify.atw_batch = s_.channel.atw_batch;
  cc.notify.atw_window = ns(s_.channel.atw_window_us * 1e3);
  cc.notify.spin_budget = ns(s_.channel.spin_budget_us * 1e3);
  cc.liveness.peer_timeout = kForever / 4; // the model tells channels when a peer leaves
  cc.liveness.heartbeat_period = kForever / 4;
  const SharedRegion region{g->memory->data(), g->memory->size()};
  Generation* gp = g.get();
  g->tx_bell.on_ring = [this, &p, gp](Wake) { // the sender rings: data for the receiver
    ++data_rings_;
    if (p.rx_gen == gp) receiver_wake(p, p.send_offset + ns(costs_.wakeup_latency_ns), true);
  };
  g->rx_bell.on_ring = [this, &p, gp](Wake) { // the receiver rings: space for the sender
    ++space_rings_;
    if (p.tx_gen == gp) sender_wake(p, ns(costs_.wakeup_latency_ns));
  };
  cc.platform_address = p.from;
  Opened tx = Channel::create(region, cc, g->tx_bell, model_.clock());
  if (tx.channel) g->memory->release_rings(); // zero, untouched until records come
  cc.platform_address = p.to;
  Opened rx = Channel::attach(region, cc, g->rx_bell, model_.clock());
  if (!tx.channel || !rx.channel) {
    throw std::logic_error("sim: a local channel could not be set up: " + tx.detail + rx.detail);
  }
  g->tx = std::move(tx.channel);
  g->rx = std::move(rx.channel);
  g->tx_path = std::make_unique<ChannelPath>(*g->tx);
  g->rx_path = std::make_unique<ChannelPath>(*g->rx);
  p.tx_gen = gp;
  p.ever_local = true;
  ++channels_opened_;
  const std::uint64_t epoch = g->epoch;
  p.generations.push_back(std::move(g));
  return {gp->tx_path.get(), epoch};
}

void World::release_local(Pipe& p) {
  if (p.tx_gen == nullptr) return;
  p.tx_gen->released = true;
  p.tx_gen = nullptr;
  if (pools_.empty()) return;
  const PairId pair = pair_id(p.from, p.to);
  auto it = pool_refs_.find(pair);
  if (it == pool_refs_.end() || --it->second > 0) return;
  pool_refs_.erase(it);
  for (auto& pool : pools_) {
    if (pool->has_pair(pair)) pool->remove_pair(pair, model_.now_ns());
  }
}

// `vm` left host `left`: every channel between it and a VM there loses its memory. Records the
// peer wrote completely stay readable (the receiver drains them); sends fail from now on.
void World::break_channels_of(VmId vm, HostId left) {
  for (auto& pp : pipes_) {
    Pipe& p = *pp;
    if (p.from != vm && p.to != vm) continue;
    const VmId other = p.from == vm ? p.to : p.from;
    if (!model_.topology().has_vm(other) || model_.topology().host_of(other) != left) continue;
    bool any = false;
    for (auto& g : p.generations) {
      if (g->broken) continue;
      g->broken = any = true;
      pending_bytes_ += g->tx->unconsumed_outgoing();
      g->tx->mark_peer_dead("sim: the peer migrated away or shut down");
      g->rx->mark_peer_dead("sim: the peer migrated away or shut down");
    }
    if (any) {
      sender_wake(p, 0);
      receiver_wake(p, 0, false);
    }
  }
}

void World::record_operation(VmId self, VmId peer, LinkOperation op, Errc outcome,
                             std::uint64_t bytes) {
  const auto w = windows_->open_window(self, peer, model_.now_ns());
  ledger_.record(op, w ? std::optional(w->kind) : std::nullopt, outcome, bytes);
  if (w && s_.output.changes) {
    ChangeStats& c = change_stats(w->change);
    ++c.race_operations;
    // What the ledger counts as an error (race_ledger.cpp): a failed operation.
    if (outcome != Errc::ok && outcome != Errc::would_block) ++c.race_errors;
  }
}

void World::rebalance_pools() {
  const Nanos now = model_.now_ns();
  // Demand: the bytes each pair's local instance holds unread (its backlog), plus a chunk.
  std::unordered_map<PairId, std::uint64_t> demand;
  for (auto& pp : pipes_) {
    if (pp->tx_gen == nullptr || pp->tx_gen->broken) continue;
    demand[pair_id(pp->from, pp->to)] +=
        pp->tx_gen->tx->unconsumed_outgoing() + pp->tx_gen->ring_bytes / 2;
  }
  for (std::size_t h = 0; h < pools_.size(); ++h) {
    SharedPool& pool = *pools_[h];
    for (const auto& [pair, bytes] : demand) {
      if (pool.has_pair(pair)) pool.report_demand(pair, bytes, now);
    }
    for (const PoolResize& r : pool.rebalance(now)) {
      for (auto& pp : pipes_) { // MemPipe: the pipe inflates or deflates to its new size
        if (pair_id(pp->from, pp->to) != r.pair || pp->tx_gen == nullptr || pp->tx_busy) continue;
        if (pp->tx_gen->broken || !pp->tx_gen->tx->can_send(64)) continue;
        (void)pp->sender->renew_local(0);
      }
    }
  }
}

} // namespace ivmc::sim
