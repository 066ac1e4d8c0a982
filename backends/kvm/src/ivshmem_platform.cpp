// The platform of every ivshmem peer: see include/ivmc/kvm/ivshmem_platform.hpp.
// No fmt here: the statically linked guest agent uses this file.
#include "ivmc/kvm/ivshmem_platform.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <string>

namespace ivmc::kvm {
namespace {

constexpr std::uint64_t kAddressValid = std::uint64_t{1} << 32;
constexpr Nanos kRetry = 200'000; // between polls of a peer that is not there yet

void nap(Nanos ns) {
  std::this_thread::sleep_for(std::chrono::nanoseconds(ns));
}

std::string hex(std::uint64_t v) {
  char text[24];
  std::snprintf(text, sizeof text, "%#llx", static_cast<unsigned long long>(v));
  return text;
}

} // namespace

std::uint64_t IvshmemAddress::encode() const {
  return kAddressValid | peer_id | (std::uint64_t{vectors.data & 0xff} << 16) |
         (std::uint64_t{vectors.space & 0xff} << 24);
}

bool IvshmemAddress::decode(std::uint64_t raw, unsigned vectors, IvshmemAddress& out) {
  if ((raw & kAddressValid) == 0 || (raw >> 33) != 0) return false;
  out.peer_id = static_cast<std::uint16_t>(raw & 0xffff);
  out.vectors.data = static_cast<unsigned>((raw >> 16) & 0xff);
  out.vectors.space = static_cast<unsigned>((raw >> 24) & 0xff);
  return out.vectors.data < vectors && out.vectors.space < vectors &&
         out.vectors.data != out.vectors.space;
}

// --- LateBoundDoorbell -----------------------------------------------------------------------

void LateBoundDoorbell::bind(std::unique_ptr<Doorbell> bell) {
  owner_ = std::move(bell);
  bound_.store(owner_.get(), std::memory_order_release); // the doorbell is complete first
}

void LateBoundDoorbell::ring(Wake reason) {
  if (auto* b = bound_.load(std::memory_order_acquire)) b->ring(reason); // sees it complete
}

WaitResult LateBoundDoorbell::wait(Wake reason, Nanos timeout) {
  if (auto* b = bound_.load(std::memory_order_acquire)) return b->wait(reason, timeout); // same
  nap(std::min<Nanos>(timeout, 1'000'000)); // nobody can ring us yet
  return WaitResult::timed_out;
}

WaitResult LateBoundDoorbell::wait_uncleared(Wake reason, Nanos timeout) {
  // acquire: as in ring(), the doorbell is seen complete.
  if (auto* b = bound_.load(std::memory_order_acquire)) return b->wait_uncleared(reason, timeout);
  nap(std::min<Nanos>(timeout, 1'000'000)); // nobody can ring us yet
  return WaitResult::timed_out;
}

void LateBoundDoorbell::clear(Wake reason) {
  if (auto* b = bound_.load(std::memory_order_acquire)) b->clear(reason); // acquire: as above
}

// --- IvshmemEndpoint -------------------------------------------------------------------------

IvshmemEndpoint::~IvshmemEndpoint() {
  platform_.unregister(this);
  channel_.reset();
  region_.reset(); // unmapped only after the channel let go of it
}

std::optional<std::uint16_t> IvshmemEndpoint::peer_id() const {
  const int id = peer_id_.load(std::memory_order_relaxed); // set once
  if (id < 0) return std::nullopt;
  return static_cast<std::uint16_t>(id);
}

bool IvshmemEndpoint::bind_to_peer() {
  std::lock_guard lock(platform_.mutex_);
  return bind_locked();
}

bool IvshmemEndpoint::bind_locked() {
  if (doorbell_.bound() != nullptr) return true;
  if (channel_->wait_for_peer(0) != Errc::ok) return false; // nobody attached yet
  IvshmemAddress remote;
  const std::uint64_t raw = channel_->peer_platform_address();
  const unsigned vectors = platform_.port_->vectors();
  if (!IvshmemAddress::decode(raw, vectors, remote)) {
    throw std::runtime_error("channel side " + std::to_string(1 - channel_->side()) +
                             ": the peer's platform address " + hex(raw) +
                             " is not a valid ivshmem address for a device with " +
                             std::to_string(vectors) + " vectors");
  }
  if (region_) {
    if (const auto member = region_->member_peer_id(); member && *member != remote.peer_id) {
      throw std::runtime_error(
          "channel side " + std::to_string(1 - channel_->side()) +
          ": the peer's address names ivshmem peer " + std::to_string(remote.peer_id) +
          ", but the server handed this channel to peer " + std::to_string(*member));
    }
  }
  auto bell = platform_.port_->doorbell_to(remote.peer_id, remote.vectors, vectors_);
  if (!bell) return false;
  doorbell_.bind(std::move(bell));
  peer_id_.store(remote.peer_id, std::memory_order_relaxed); // read by the ticker, a hint
  return true;
}

Errc IvshmemEndpoint::wait_for_peer(Nanos timeout) {
  const Nanos deadline = timeout == kForever ? kForever : platform_.clock_.now() + timeout;
  for (;;) {
    if (bind_to_peer()) return Errc::ok;
    if (const Errc f = channel_->failure(); f != Errc::ok) return f;
    if (platform_.clock_.now() >= deadline) return Errc::timed_out;
    nap(kRetry);
  }
}

// --- IvshmemPlatform -------------------------------------------------------------------------

std::size_t IvshmemPlatform::region_bytes_for(std::uint32_t ring_bytes) {
  // PCI BARs, and so ivshmem regions, are powers of two.
  return std::bit_ceil(Channel::area_bytes(ring_bytes, ring_bytes));
}

IvshmemPlatform::IvshmemPlatform(std::unique_ptr<IvshmemPort> port) : port_(std::move(port)) {
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) throw std::runtime_error("eventfd for the platform's ticker failed");
  ticker_ = std::thread([this] { tick_loop(); });
}

IvshmemPlatform::~IvshmemPlatform() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  const std::uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one); // ends a ticker asleep in poll()
  ticker_.join();
  ::close(stop_fd_);
}

SharedRegion IvshmemPlatform::area(const EndpointOptions& o) const {
  const SharedRegion r = o.region ? o.region->region() : port_->region();
  if (o.offset > r.size || o.offset % 4096 != 0) {
    throw std::runtime_error("channel offset " + std::to_string(o.offset) +
                             " is not a page inside the " + std::to_string(r.size) +
                             "-byte region");
  }
  return {r.base + o.offset, r.size - o.offset};
}

std::unique_ptr<IvshmemEndpoint> IvshmemPlatform::create_channel(const EndpointOptions& o) {
  if (detached()) throw std::runtime_error("create: this process left the host");
  if (const std::string gone = server_gone(); !gone.empty())
    throw std::runtime_error("create: " + gone);
  std::unique_ptr<IvshmemEndpoint> ep(new IvshmemEndpoint(*this));
  ep->vectors_ = o.vectors;
  ep->region_ = o.region;
  ChannelConfig cfg = o.channel;
  cfg.platform_address = IvshmemAddress{port_->id(), o.vectors}.encode();
  Opened opened = Channel::create(area(o), cfg, ep->doorbell_, clock_);
  if (opened.error != Errc::ok) throw std::runtime_error(opened.detail);
  ep->channel_ = std::move(opened.channel);
  std::lock_guard lock(mutex_);
  endpoints_.push_back(ep.get());
  return ep;
}

std::unique_ptr<IvshmemEndpoint> IvshmemPlatform::attach_channel(const EndpointOptions& o,
                                                                 Nanos timeout) {
  if (detached()) throw std::runtime_error("attach: this process left the host");
  if (const std::string gone = server_gone(); !gone.empty())
    throw std::runtime_error("attach: " + gone);
  const Nanos deadline = timeout == kForever ? kForever : clock_.now() + timeout;
  std::unique_ptr<IvshmemEndpoint> ep(new IvshmemEndpoint(*this));
  ep->vectors_ = o.vectors;
  ep->region_ = o.region;
  ChannelConfig cfg = o.channel;
  cfg.platform_address = IvshmemAddress{port_->id(), o.vectors}.encode();
  for (;;) {
    Opened opened = Channel::attach(area(o), cfg, ep->doorbell_, clock_);
    if (opened.error == Errc::ok) {
      ep->channel_ = std::move(opened.channel);
      break;
    }
    if (opened.error != Errc::would_block) throw std::runtime_error(opened.detail);
    if (clock_.now() >= deadline) {
      throw std::runtime_error("attach: no channel was created at offset " +
                               std::to_string(o.offset) + " in time");
    }
    nap(kRetry);
  }
  while (!ep->bind_to_peer()) {
    if (clock_.now() >= deadline) {
      throw std::runtime_error("attach: the creator's ivshmem peer never became known");
    }
    nap(kRetry);
  }
  ep->channel_->heartbeat();
  std::lock_guard lock(mutex_);
  endpoints_.push_back(ep.get());
  return ep;
}

void IvshmemPlatform::detach(const std::string& why) {
  std::lock_guard lock(mutex_);
  if (detached_) return;
  detached_ = true;
  for (IvshmemEndpoint* ep : endpoints_) ep->channel_->mark_peer_dead(why);
  port_->disconnect();
}

bool IvshmemPlatform::detached() const {
  std::lock_guard lock(mutex_);
  return detached_;
}

std::string IvshmemPlatform::server_gone() const {
  std::lock_guard lock(mutex_);
  return server_gone_;
}

std::size_t IvshmemPlatform::endpoint_count() const {
  std::lock_guard lock(mutex_);
  return endpoints_.size();
}

void IvshmemPlatform::unregister(IvshmemEndpoint* endpoint) {
  std::lock_guard lock(mutex_);
  endpoints_.erase(std::remove(endpoints_.begin(), endpoints_.end(), endpoint), endpoints_.end());
}

void IvshmemPlatform::kill_endpoint(IvshmemEndpoint* ep, const std::string& why) {
  ep->channel_->mark_peer_dead(why);
  // The failure is recorded (release, in the channel) before this ring, so a thread asleep
  // on the endpoint's doorbell wakes, re-checks and returns peer_dead now, not at the end of
  // its wait slice. Rings are sticky: one about to sleep returns at once.
  port_->wake_own(ep->vectors_);
}

void IvshmemPlatform::sleep_until_notice(std::unique_lock<std::mutex>& lock, Nanos period) {
  const int notice = server_gone_.empty() ? port_->notice_fd() : -1;
  pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {notice, POLLIN, 0}};
  const timespec timeout{static_cast<time_t>(period / 1'000'000'000),
                         static_cast<long>(period % 1'000'000'000)}; // ATW windows need < 1 ms
  // The notice fd is read only under the mutex (by departed()); it may be closed while we
  // poll it unlocked (an own disconnect, or another thread finding the server gone). Then
  // poll() just sleeps out its timeout, and the next round no longer asks for it.
  lock.unlock();
  const int ready = ::ppoll(fds, notice >= 0 ? 2 : 1, &timeout, nullptr);
  lock.lock();
  if (ready < 0 && errno != EINTR) stop_cv_.wait_for(lock, std::chrono::nanoseconds(period));
}

void IvshmemPlatform::tick_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (detached_) { // this process left the host: no heartbeats, no notices, no timers
      stop_cv_.wait(lock, [this] { return stopping_; });
      break;
    }
    // Departure notices: a departed peer's channels fail now rather than at the heartbeat
    // timeout, and whoever sleeps on them wakes now.
    for (const std::uint16_t gone : port_->departed()) {
      for (IvshmemEndpoint* ep : endpoints_) {
        if (ep->peer_id() == gone) {
          kill_endpoint(ep, "the ivshmem server reported peer " + std::to_string(gone) +
                                " disconnected");
        }
      }
    }
    // The server itself is gone: nobody will announce joins or departures any more, and a
    // restarted server makes a new region. Every channel in this orphaned region fails now.
    if (server_gone_.empty()) {
      if (std::string why = port_->server_gone(); !why.empty()) {
        server_gone_ = "the ivshmem server is gone (" + why + ")";
        for (IvshmemEndpoint* ep : endpoints_) kill_endpoint(ep, server_gone_);
      }
    }
    Nanos period = 25'000'000; // well inside the default heartbeat period
    for (IvshmemEndpoint* ep : endpoints_) {
      // A creator that never called wait_for_peer() still gets its doorbell once the peer is
      // there; until then its rings go nowhere and the peer's wait slices cover for them.
      if (ep->doorbell_.bound() == nullptr) {
        try {
          if (!ep->bind_locked()) period = std::min<Nanos>(period, 1'000'000);
        } catch (const std::exception& e) {
          ep->channel_->mark_peer_dead(e.what());
        }
      }
      ep->channel_->heartbeat();
      ep->channel_->flush();
      if (ep->channel_->policy() == NotifyPolicy::atw) {
        period = std::min(period, std::max<Nanos>(ep->channel_->atw_window() / 2, 20'000));
      }
    }
    if (stopping_) break;
    sleep_until_notice(lock, period);
  }
}

} // namespace ivmc::kvm
