// A VM process's link ends (vm_links.hpp).
#include "vm_links.hpp"

#include <algorithm>
#include <chrono>
#include <exception>

namespace ivmc::host {

namespace {
// Each pipe end waits on its own pair of the server's 16 vectors, so a ring for one pipe
// rarely wakes another pipe's thread (a spurious wake-up would only cost a re-check).
kvm::WakeVectors vectors_for(std::uint32_t pipe) {
  const auto base = static_cast<std::uint8_t>(2 * (pipe % 8));
  return {base, static_cast<std::uint8_t>(base + 1)};
}
constexpr Nanos kCloseTimeout = 2'000'000'000;  // a teardown waits this long for the receiver
constexpr Nanos kRegionTimeout = 1'000'000'000; // the server answers at once, or is gone

// The server's name for pipe `pipe`'s instance `epoch` (between its two VMs).
std::uint64_t instance_key(std::uint32_t pipe, std::uint64_t epoch) {
  return (std::uint64_t{pipe} << 40) | (epoch & ((std::uint64_t{1} << 40) - 1));
}

std::size_t page_round(std::size_t bytes) {
  return (bytes + 4095) / 4096 * 4096;
}
} // namespace

void VmContext::record(LinkOperation op, VmId peer, Errc outcome, std::uint64_t bytes) {
  const std::optional<ChangeKind> kind = board.race(self, peer);
  std::lock_guard lock(ledger_mutex_);
  ledger_.record(op, kind, outcome, bytes);
}

void VmContext::install_membership(LinkEnvironment& env, VmId peer) {
  env.believes_co_resident = [this, peer] { return board.believes(self, peer); };
  env.view_version = [this] { return board.view_version(self); };
  env.probe_co_resident = [this, peer] { return board.co_resident(self, peer); };
  env.on_operation = [this, peer](LinkOperation op, Errc outcome, std::uint64_t bytes) {
    record(op, peer, outcome, bytes);
  };
}

RaceLedger VmContext::ledger() const {
  std::lock_guard lock(ledger_mutex_);
  return ledger_;
}

// --- PoolClient ------------------------------------------------------------------------------

void PoolClient::send(const Message& m) {
  control_.send(m); // one packet: whole, whoever else sends
}

std::optional<std::uint32_t> PoolClient::acquire(std::uint32_t pipe, VmId peer, HostId host,
                                                 bool renew) {
  std::unique_lock lock(mutex_);
  const std::uint64_t id = next_id_++;
  send(Message("pool_acquire")
           .set("id", id)
           .set("pipe", std::uint64_t{pipe})
           .set("peer", std::uint64_t{peer})
           .set("host", std::uint64_t{host})
           .set("renew", unsigned{renew}));
  if (!replied_.wait_for(lock, std::chrono::seconds(10), [&] { return replies_.count(id) != 0; })) {
    return std::nullopt; // the run's process is gone or stuck: stay remote
  }
  const std::optional<std::uint32_t> ring = replies_[id];
  replies_.erase(id);
  return ring;
}

void PoolClient::release(std::uint32_t pipe, VmId peer, HostId host) {
  std::lock_guard lock(mutex_);
  send(Message("pool_release")
           .set("pipe", std::uint64_t{pipe})
           .set("peer", std::uint64_t{peer})
           .set("host", std::uint64_t{host}));
}

void PoolClient::demand(std::uint32_t pipe, VmId peer, HostId host, std::uint64_t bytes) {
  std::lock_guard lock(mutex_);
  send(Message("pool_demand")
           .set("pipe", std::uint64_t{pipe})
           .set("peer", std::uint64_t{peer})
           .set("host", std::uint64_t{host})
           .set("bytes", bytes));
}

void PoolClient::deliver(const Message& reply) {
  std::optional<std::uint32_t> ring;
  if (reply.verb() == "pool_grant") {
    const std::uint64_t r = reply.u64("ring");
    if (r < 4096 || r > (1u << 30) || (r & (r - 1)) != 0) throw ControlError("pool_grant: ring");
    ring = static_cast<std::uint32_t>(r);
  }
  {
    std::lock_guard lock(mutex_);
    replies_[reply.u64("id")] = ring;
  }
  replied_.notify_all();
}

// --- SenderEnd -------------------------------------------------------------------------------

SenderEnd::SenderEnd(VmContext& vm, std::uint32_t pipe, VmId peer, bool local_allowed,
                     bool reestablish, posix::TcpPath remote)
    : vm_(vm), pipe_(pipe), peer_(peer), local_allowed_(local_allowed), reestablish_(reestablish),
      remote_(std::move(remote)) {
  LinkEnvironment env;
  env.remote = &remote_;
  env.open_local = [this](Nanos) { return open_local(false); };
  if (vm_.pool != nullptr) env.renew_local = [this](Nanos) { return open_local(true); };
  env.release_local = [this] { release_local(); };
  vm_.install_membership(env, peer_);
  link_ = std::make_unique<LinkSender>(std::move(env), vm_.link, vm_.clock);
}

SenderEnd::~SenderEnd() {
  link_.reset();
  if (next_) vm_.residence.untrack(next_.get());
  if (local_) vm_.residence.untrack(local_.get());
  next_.reset();
  local_.reset();
}

void SenderEnd::maintain() {
  if (vm_.pool == nullptr || !local_ || !pool_host_ || finished_) return;
  // relaxed: a hint; the pool's new size is fetched again below.
  if (renew_wanted_.exchange(false, std::memory_order_relaxed) &&
      link_->path() == PathKind::local && !local_->channel().peer_detached()) {
    (void)link_->renew_local(1'000'000'000);
  }
  const Nanos now = vm_.clock.now();
  if (local_ && now >= next_demand_) {
    // Demand as MemPipe's monitor sees it: what the ring holds unread, plus half a ring.
    next_demand_ = now + 5'000'000;
    vm_.pool->demand(pipe_, peer_, *pool_host_,
                     local_->channel().unconsumed_outgoing() + ring_bytes_ / 2);
  }
}

LocalPath SenderEnd::open_local(bool renew) {
  if (!local_allowed_) return {};
  if (!renew && !reestablish_ && epoch_ > 0) return {}; // channel.migration = false: only once
  // Shared memory exists only between processes attached to one server, whatever either
  // believes: the server knows who is connected, and so does the board's truth, which is
  // read here in its place. An establishment against a stale view is deferred (Table IV,
  // row 1), as the simulator's platform defers it.
  if (!vm_.board.co_resident(vm_.self, peer_)) return {};
  std::shared_ptr<Attachment> at = vm_.residence.current();
  // On no host (not created yet, shut down), or not arrived yet: the process runs again
  // after its switch-over a moment before it has joined its new host's server.
  if (!at || at->host != vm_.board.host_of(vm_.self)) return {};
  if (local_ && !renew) release_local();
  ChannelConfig cc = vm_.channel;
  if (vm_.pool != nullptr) {
    const std::optional<std::uint32_t> ring = vm_.pool->acquire(pipe_, peer_, at->host, renew);
    if (!ring) return {}; // no room in the pool (counted there): stay remote
    pool_host_ = at->host;
    cc.ring_bytes = *ring;
  }
  const std::uint64_t epoch = epoch_ + 1;
  kvm::EndpointOptions o;
  o.channel = cc;
  o.vectors = vectors_for(pipe_);
  std::unique_ptr<kvm::IvshmemEndpoint> ep;
  try {
    // The instance's own region, from the server, which hands it to this VM and the peer only
    // (and only if the trust list admits them): no other process can map it, and its seals
    // keep the peer from truncating it under us.
    o.region = at->platform->open_region(
        peer_, instance_key(pipe_, epoch),
        page_round(Channel::area_bytes(cc.ring_bytes, cc.ring_bytes)), kRegionTimeout);
    ep = at->platform->create_channel(o);
  } catch (const std::exception&) {
    // Refused by the server (its trust list), or the host was left meanwhile: stay remote,
    // try at the next view change.
    return {};
  }
  epoch_ = epoch;
  auto instance = std::make_unique<LocalInstance>(std::move(at), std::move(ep), vm_.totals);
  vm_.residence.track(instance.get());
  ++channels_opened_;
  ring_bytes_ = cc.ring_bytes;
  std::unique_ptr<LocalInstance>& slot = renew ? next_ : local_;
  slot = std::move(instance);
  return {&slot->path(), epoch};
}

void SenderEnd::release_local() {
  if (!local_) return;
  local_->channel().close(kCloseTimeout); // pending data first (survey 5.2), unless it broke
  vm_.residence.untrack(local_.get());
  local_.reset();
  if (next_) { // a renewal: the replacement takes over, the pair keeps its pool share
    local_ = std::move(next_);
    return;
  }
  if (vm_.pool != nullptr && pool_host_) {
    vm_.pool->release(pipe_, peer_, *pool_host_);
    pool_host_.reset();
  }
}

// --- ReceiverEnd -----------------------------------------------------------------------------

ReceiverEnd::ReceiverEnd(VmContext& vm, std::uint32_t pipe, VmId peer, posix::TcpPath remote)
    : vm_(vm), pipe_(pipe), peer_(peer), remote_(std::move(remote)) {
  LinkEnvironment env;
  env.remote = &remote_;
  env.find_local = [this](std::uint64_t epoch, Nanos timeout) {
    return find_local(epoch, timeout);
  };
  env.release_local = [this] { release_local(); };
  vm_.install_membership(env, peer_);
  link_ = std::make_unique<LinkReceiver>(std::move(env), vm_.clock);
}

ReceiverEnd::~ReceiverEnd() {
  link_.reset();
  for (auto& [epoch, instance] : instances_) vm_.residence.untrack(instance.get());
  instances_.clear();
}

FramePath* ReceiverEnd::find_local(std::uint64_t epoch, Nanos timeout) {
  if (auto it = instances_.find(epoch); it != instances_.end()) return &it->second->path();
  std::shared_ptr<Attachment> at = vm_.residence.current();
  if (!at || at->host != vm_.board.host_of(vm_.self)) return nullptr; // not (yet) there
  kvm::EndpointOptions o;
  o.channel = vm_.channel;
  o.vectors = vectors_for(pipe_);
  std::unique_ptr<kvm::IvshmemEndpoint> ep;
  try {
    // Joins the region the sender had the server create for this instance (0 bytes: never
    // create one). Short: the link asks again, and meanwhile looks at the remote path.
    // The server hands a region once to each member: keep it until the attach succeeds.
    if (joined_.epoch != epoch || joined_.attachment != at.get() || !joined_.region) {
      joined_ = {epoch, at.get(),
                 at->platform->open_region(peer_, instance_key(pipe_, epoch), 0, kRegionTimeout)};
    }
    o.region = joined_.region;
    ep = at->platform->attach_channel(o, std::min<Nanos>(timeout, 5'000'000));
    joined_ = {};
  } catch (const std::exception&) {
    return nullptr; // not set up on this host (yet), or refused by the server
  }
  auto instance = std::make_unique<LocalInstance>(std::move(at), std::move(ep), vm_.totals);
  vm_.residence.track(instance.get());
  current_ = epoch;
  FramePath* path = &instance->path();
  instances_[epoch] = std::move(instance);
  // At most the current instance and one lagging one are kept.
  while (instances_.size() > 2) {
    vm_.residence.untrack(instances_.begin()->second.get());
    instances_.erase(instances_.begin());
  }
  return path;
}

void ReceiverEnd::release_local() {
  auto it = instances_.find(current_);
  if (it == instances_.end()) return;
  vm_.residence.untrack(it->second.get());
  instances_.erase(it);
}

} // namespace ivmc::host
