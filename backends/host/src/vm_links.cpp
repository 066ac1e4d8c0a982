// A VM process's link ends (vm_links.hpp).
#include "vm_links.hpp"

#include <algorithm>
#include <exception>

namespace ivmc::host {

namespace {
// Each pipe end waits on its own pair of the server's 16 vectors, so a ring for one pipe
// rarely wakes another pipe's thread (a spurious wake-up would only cost a re-check).
kvm::WakeVectors vectors_for(std::uint32_t pipe) {
  const auto base = static_cast<std::uint8_t>(2 * (pipe % 8));
  return {base, static_cast<std::uint8_t>(base + 1)};
}
constexpr Nanos kCloseTimeout = 2'000'000'000; // a teardown waits this long for the receiver
} // namespace

void VmContext::record(LinkOperation op, VmId peer, Errc outcome, std::uint64_t bytes) {
  const std::optional<ChangeKind> kind = board.race(self, peer);
  std::lock_guard lock(ledger_mutex_);
  ledger_.record(op, kind, outcome, bytes);
}

RaceLedger VmContext::ledger() const {
  std::lock_guard lock(ledger_mutex_);
  return ledger_;
}

// --- SenderEnd -------------------------------------------------------------------------------

SenderEnd::SenderEnd(VmContext& vm, std::uint32_t pipe, VmId peer, bool local_allowed,
                     posix::TcpPath remote)
    : vm_(vm), pipe_(pipe), peer_(peer), local_allowed_(local_allowed), remote_(std::move(remote)) {
  LinkEnvironment env;
  env.remote = &remote_;
  env.open_local = [this](Nanos) { return open_local(); };
  env.release_local = [this] { release_local(); };
  env.believes_co_resident = [this] { return vm_.board.believes(vm_.self, peer_); };
  env.view_version = [this] { return vm_.board.view_version(vm_.self); };
  env.probe_co_resident = [this] { return vm_.board.co_resident(vm_.self, peer_); };
  env.on_operation = [this](LinkOperation op, Errc outcome, std::uint64_t bytes) {
    vm_.record(op, peer_, outcome, bytes);
  };
  link_ = std::make_unique<LinkSender>(std::move(env), vm_.link, vm_.clock);
}

SenderEnd::~SenderEnd() {
  link_.reset();
  if (local_) vm_.residence.untrack(local_.get());
  local_.reset();
}

LocalPath SenderEnd::open_local() {
  if (!local_allowed_) return {};
  // Shared memory exists only between processes attached to one server, whatever either
  // believes: the server knows who is connected, and so does the board's truth, which is
  // read here in its place. An establishment against a stale view is deferred (Table IV,
  // row 1), as the simulator's platform defers it.
  if (!vm_.board.co_resident(vm_.self, peer_)) return {};
  std::shared_ptr<Attachment> at = vm_.residence.current();
  // On no host (not created yet, shut down), or not arrived yet: the process runs again
  // after its switch-over a moment before it has joined its new host's server.
  if (!at || at->host != vm_.board.host_of(vm_.self)) return {};
  if (local_) release_local();
  const std::uint64_t epoch = epoch_ + 1;
  kvm::EndpointOptions o;
  o.channel = vm_.channel;
  o.offset = vm_.slots.offset(pipe_, epoch);
  o.vectors = vectors_for(pipe_);
  std::unique_ptr<kvm::IvshmemEndpoint> ep;
  try {
    ep = at->platform->create_channel(o);
  } catch (const std::exception&) {
    return {}; // the host was left meanwhile: stay remote, try at the next view change
  }
  epoch_ = epoch;
  local_ = std::make_unique<LocalInstance>(std::move(at), std::move(ep), vm_.totals);
  vm_.residence.track(local_.get());
  ++channels_opened_;
  return {&local_->path(), epoch};
}

void SenderEnd::release_local() {
  if (!local_) return;
  local_->channel().close(kCloseTimeout); // pending data first (survey 5.2), unless it broke
  vm_.residence.untrack(local_.get());
  local_.reset();
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
  env.believes_co_resident = [this] { return vm_.board.believes(vm_.self, peer_); };
  env.view_version = [this] { return vm_.board.view_version(vm_.self); };
  env.probe_co_resident = [this] { return vm_.board.co_resident(vm_.self, peer_); };
  env.on_operation = [this](LinkOperation op, Errc outcome, std::uint64_t bytes) {
    vm_.record(op, peer_, outcome, bytes);
  };
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
  o.offset = vm_.slots.offset(pipe_, epoch);
  o.vectors = vectors_for(pipe_);
  std::unique_ptr<kvm::IvshmemEndpoint> ep;
  try {
    // Short: the link asks again, and meanwhile looks at the remote path.
    ep = at->platform->attach_channel(o, std::min<Nanos>(timeout, 5'000'000));
  } catch (const std::exception&) {
    return nullptr; // not set up on this host (yet), or an older instance still holds the slot
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
