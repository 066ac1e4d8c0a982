// Where a VM process lives (residence.hpp).
#include "residence.hpp"

#include <algorithm>
#include <stdexcept>

namespace ivmc::host {

LocalInstance::LocalInstance(std::shared_ptr<Attachment> at,
                             std::unique_ptr<kvm::IvshmemEndpoint> endpoint, ChannelTotals& totals)
    : at_(std::move(at)), endpoint_(std::move(endpoint)),
      path_(std::make_unique<ChannelPath>(endpoint_->channel())), totals_(totals) {}

LocalInstance::~LocalInstance() {
  const ChannelStats s = endpoint_->channel().stats();
  // relaxed: counters summed at the end of the run, after every thread joined.
  totals_.data_notifications.fetch_add(s.data_notifications, std::memory_order_relaxed);
  totals_.space_notifications.fetch_add(s.space_notifications, std::memory_order_relaxed);
  totals_.sleeps.fetch_add(s.sleeps, std::memory_order_relaxed);
  totals_.wakeups.fetch_add(s.wakeups, std::memory_order_relaxed);
  path_.reset();
  endpoint_.reset();
}

Residence::Residence(std::vector<std::string> host_sockets, unsigned vectors,
                     kvm::EnrolmentToken token)
    : sockets_(std::move(host_sockets)), vectors_(vectors), token_(token) {}

Residence::~Residence() = default;

std::shared_ptr<Attachment> Residence::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

void Residence::attach(HostId host) {
  if (host >= sockets_.size()) {
    throw std::runtime_error("attach: no host " + std::to_string(host));
  }
  auto at = std::make_shared<Attachment>();
  at->host = host;
  at->platform = kvm::HostPlatform::connect(sockets_[host], 5'000'000'000, vectors_, token_);
  std::lock_guard lock(mutex_);
  current_ = std::move(at);
  // Attachments left behind that no instance uses any more can go.
  std::erase_if(retired_, [](const std::shared_ptr<Attachment>& a) { return a.use_count() == 1; });
}

std::uint64_t Residence::detach(const std::string& why) {
  std::lock_guard lock(mutex_);
  if (!current_) return 0;
  std::uint64_t pending = 0;
  for (LocalInstance* i : live_) {
    if (&i->attachment() == current_.get()) pending += i->channel().unconsumed_outgoing();
  }
  current_->platform->detach(why);
  retired_.push_back(std::move(current_));
  current_.reset();
  return pending;
}

void Residence::track(LocalInstance* instance) {
  std::lock_guard lock(mutex_);
  live_.insert(instance);
}

void Residence::untrack(LocalInstance* instance) {
  std::lock_guard lock(mutex_);
  live_.erase(instance);
}

} // namespace ivmc::host
