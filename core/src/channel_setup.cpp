// The channel's setup: the policies' names, the area's size, creating a channel in an area and
// attaching to one (every field of the peer's control area validated: it is hostile input),
// and leaving it. The data path is channel.cpp. See wire.hpp for the layout, channel.hpp for
// the contract.
#include "channel_internal.hpp"

#include "ivmc/core/channel.hpp"

#include <memory>
#include <string>

namespace ivmc {

using namespace channel_detail;
using wire::ControlArea;
using wire::EndpointState;

std::string_view to_string(NotifyPolicy p) {
  switch (p) {
  case NotifyPolicy::polling:
    return "polling";
  case NotifyPolicy::on_demand:
    return "on_demand";
  case NotifyPolicy::per_packet:
    return "per_packet";
  case NotifyPolicy::atw:
    return "atw";
  case NotifyPolicy::spin_then_block:
    return "spin_then_block";
  }
  return "unknown";
}

bool parse_notify_policy(std::string_view text, NotifyPolicy& out) {
  for (auto p : {NotifyPolicy::polling, NotifyPolicy::on_demand, NotifyPolicy::per_packet,
                 NotifyPolicy::atw, NotifyPolicy::spin_then_block}) {
    if (text == to_string(p)) {
      out = p;
      return true;
    }
  }
  if (text == "pni") {
    out = NotifyPolicy::per_packet;
    return true;
  }
  return false;
}

std::size_t Channel::area_bytes(std::uint32_t ring0_bytes, std::uint32_t ring1_bytes) {
  return kControlPage + std::size_t{ring0_bytes} + ring1_bytes;
}

// ---------------------------------------------------------------------------------------------
// Creation and attachment

Opened Channel::create(SharedRegion area, const ChannelConfig& config, Doorbell& doorbell,
                       Clock& clock) {
  static_assert(sizeof(ControlArea) <= kControlPage);
  const std::uint32_t ring = config.ring_bytes;
  if (!is_pow2_in_range(ring)) {
    return {nullptr, Errc::bad_layout,
            "create: ring_bytes " + std::to_string(ring) + " is not a power of two in [" +
                std::to_string(wire::kMinRingBytes) + ", " + std::to_string(wire::kMaxRingBytes) +
                "]"};
  }
  const std::uint32_t features = config.record_crc32c ? wire::kFeatureRecordCrc32c : 0;
  const std::uint32_t largest = wire::max_payload_for(ring, wire::record_prefix(features));
  const std::uint32_t max_message = config.max_message == 0 ? largest : config.max_message;
  if (max_message > largest) {
    return {nullptr, Errc::bad_layout,
            "create: max_message " + std::to_string(max_message) + " exceeds " +
                std::to_string(largest) + ", the largest a ring of " + std::to_string(ring) +
                " bytes holds"};
  }
  const std::size_t need = area_bytes(ring, ring);
  if (area.base == nullptr || area.size < need) {
    return {nullptr, Errc::bad_layout,
            "create: area of " + std::to_string(area.size) + " bytes, channel needs " +
                std::to_string(need)};
  }
  if (reinterpret_cast<std::uintptr_t>(area.base) % wire::kCacheLine != 0) {
    return {nullptr, Errc::bad_layout, "create: area base is not 64-byte aligned"};
  }
  auto* control = reinterpret_cast<ControlArea*>(area.base);
  // Whatever generation an earlier channel here had (possibly garbage), ours differs from it.
  const std::uint64_t old_generation =
      shared(control->identity.generation).load(std::memory_order_relaxed); // any value will do
  // Retract the magic first so that a concurrent attacher cannot pair with a half-zeroed area.
  shared(control->identity.magic).store(0, std::memory_order_release); // before the zeroing
  std::memset(area.base + sizeof(std::uint32_t), 0, need - sizeof(std::uint32_t));

  Geometry g{};
  g.ring_bytes[0] = g.ring_bytes[1] = ring;
  g.ring_offset[0] = kControlPage;
  g.ring_offset[1] = kControlPage + ring;
  g.max_message = max_message;
  g.generation = old_generation + 1;
  g.features = features;

  auto& id = control->identity;
  id.version = wire::kVersion;
  id.control_bytes = sizeof(ControlArea);
  id.ring_bytes[0] = g.ring_bytes[0];
  id.ring_bytes[1] = g.ring_bytes[1];
  id.max_message = g.max_message;
  id.notify_policy = static_cast<std::uint32_t>(config.notify.policy);
  id.ring_offset[0] = g.ring_offset[0];
  id.ring_offset[1] = g.ring_offset[1];
  id.total_bytes = need;
  id.generation = g.generation;
  id.features = g.features;
  auto& self = control->endpoint[0];
  self.platform_address = config.platform_address;
  self.state = static_cast<std::uint32_t>(EndpointState::live);
  // Publish: an attacher that acquires the magic sees the identity and our live state.
  shared(id.magic).store(wire::kMagic, std::memory_order_release);

  std::unique_ptr<Channel> ch(
      new Channel(area, g, 0, config.notify.policy, config, doorbell, clock));
  return {std::move(ch), Errc::ok, {}};
}

Opened Channel::attach(SharedRegion area, const ChannelConfig& config, Doorbell& doorbell,
                       Clock& clock) {
  auto bad = [](std::string what) {
    return Opened{nullptr, Errc::bad_layout, "attach: " + std::move(what)};
  };
  if (area.base == nullptr || area.size < sizeof(ControlArea)) {
    return bad("area of " + std::to_string(area.size) + " bytes is smaller than the " +
               std::to_string(sizeof(ControlArea)) + "-byte control area");
  }
  if (reinterpret_cast<std::uintptr_t>(area.base) % wire::kCacheLine != 0) {
    return bad("area base is not 64-byte aligned");
  }
  auto* control = reinterpret_cast<ControlArea*>(area.base);
  auto& id = control->identity;
  const std::uint32_t magic =
      shared(id.magic).load(std::memory_order_acquire); // pairs with create(): identity visible
  if (magic != wire::kMagic) {
    return {nullptr, Errc::would_block,
            "attach: no channel initialised here yet (magic " + hex(magic) + ")"};
  }
  // Copy every field once (the creator is untrusted), then validate only the copy.
  wire::Identity c;
  std::memcpy(&c, &id, sizeof c);
  if (c.version != wire::kVersion) {
    return bad("version " + std::to_string(c.version) + ", this build speaks " +
               std::to_string(wire::kVersion));
  }
  if (c.control_bytes != sizeof(ControlArea)) {
    return bad("identity.control_bytes " + std::to_string(c.control_bytes) + ", expected " +
               std::to_string(sizeof(ControlArea)));
  }
  if (c.total_bytes > area.size) {
    return bad("identity.total_bytes " + std::to_string(c.total_bytes) +
               " exceeds the shared area of " + std::to_string(area.size) + " bytes");
  }
  Geometry g{};
  for (int d = 0; d < 2; ++d) {
    const std::string ring = "ring " + std::to_string(d);
    if (!is_pow2_in_range(c.ring_bytes[d])) {
      return bad("identity.ring_bytes[" + std::to_string(d) +
                 "] = " + std::to_string(c.ring_bytes[d]) + " is not a power of two in range");
    }
    if (c.ring_offset[d] < sizeof(ControlArea) || c.ring_offset[d] % wire::kCacheLine != 0 ||
        c.ring_offset[d] > c.total_bytes || c.ring_bytes[d] > c.total_bytes - c.ring_offset[d]) {
      return bad("identity.ring_offset[" + std::to_string(d) + "] = " +
                 std::to_string(c.ring_offset[d]) + " (" + std::to_string(c.ring_bytes[d]) +
                 " bytes) lies outside the area or overlaps the control area");
    }
    g.ring_bytes[d] = c.ring_bytes[d];
    g.ring_offset[d] = c.ring_offset[d];
  }
  const bool overlap = g.ring_offset[0] < g.ring_offset[1] + g.ring_bytes[1] &&
                       g.ring_offset[1] < g.ring_offset[0] + g.ring_bytes[0];
  if (overlap) return bad("rings 0 and 1 overlap");
  if ((c.features & ~wire::kKnownFeatures) != 0 || c.reserved0 != 0) {
    return bad("identity.features " + hex(c.features) + " (reserved " + hex(c.reserved0) +
               ") has bits this build does not know");
  }
  const bool checked = (c.features & wire::kFeatureRecordCrc32c) != 0;
  if (checked != config.record_crc32c) {
    return {nullptr, Errc::refused,
            std::string("attach: the creator's channel ") +
                (checked ? "checks" : "does not check") +
                " every record with CRC32C (identity.features " + hex(c.features) +
                ") and this endpoint's config.record_crc32c is " +
                (config.record_crc32c ? "true" : "false") + ": both ends must agree"};
  }
  const std::uint32_t smallest = std::min(g.ring_bytes[0], g.ring_bytes[1]);
  if (c.max_message == 0 ||
      c.max_message > wire::max_payload_for(smallest, wire::record_prefix(c.features))) {
    return bad("identity.max_message " + std::to_string(c.max_message) +
               " does not fit a ring of " + std::to_string(smallest) + " bytes");
  }
  if (c.notify_policy > static_cast<std::uint32_t>(NotifyPolicy::spin_then_block)) {
    return bad("identity.notify_policy " + std::to_string(c.notify_policy) + " is unknown");
  }
  g.max_message = c.max_message;
  g.generation = c.generation;
  g.features = c.features;

  const std::uint64_t creator = shared(control->endpoint[0].platform_address)
                                    .load(std::memory_order_relaxed); // published by the magic
  if (config.admit && !config.admit(creator)) {
    return {nullptr, Errc::refused,
            "attach: the creator (platform address " + hex(creator) +
                ") is not in this endpoint's trust list"};
  }
  auto& self = control->endpoint[1];
  shared(self.platform_address)
      .store(config.platform_address, std::memory_order_relaxed); // published by the CAS below
  auto expected = static_cast<std::uint32_t>(EndpointState::absent);
  // acq_rel: our platform address is visible to whoever sees us live.
  if (!shared(self.state)
           .compare_exchange_strong(expected, static_cast<std::uint32_t>(EndpointState::live),
                                    std::memory_order_acq_rel)) {
    return {nullptr, Errc::already_attached,
            "attach: side 1 is not free (state " + std::to_string(expected) + ")"};
  }
  const auto policy = static_cast<NotifyPolicy>(c.notify_policy);
  std::unique_ptr<Channel> ch(new Channel(area, g, 1, policy, config, doorbell, clock));
  if (policy != NotifyPolicy::polling) doorbell.ring(Wake::data); // wake wait_for_peer()
  return {std::move(ch), Errc::ok, {}};
}

Channel::Channel(SharedRegion area, const Geometry& geometry, int side, NotifyPolicy policy,
                 const ChannelConfig& config, Doorbell& doorbell, Clock& clock)
    : control_(reinterpret_cast<ControlArea*>(area.base)), geometry_(geometry), side_(side),
      policy_(policy), notify_(config.notify), liveness_(config.liveness), admit_(config.admit),
      max_message_(geometry.max_message), prefix_(wire::record_prefix(geometry.features)),
      checked_((geometry.features & wire::kFeatureRecordCrc32c) != 0),
      own_address_(config.platform_address), doorbell_(doorbell), clock_(clock),
      own_state_(static_cast<std::uint32_t>(EndpointState::live)) {
  const int tx = side_, rx = 1 - side_;
  tx_.data = area.base + geometry.ring_offset[tx];
  tx_.size = geometry.ring_bytes[tx];
  tx_.mask = tx_.size - 1;
  rx_.data = area.base + geometry.ring_offset[rx];
  rx_.size = geometry.ring_bytes[rx];
  rx_.mask = rx_.size - 1;
  // Publishing our consumed index is a store the producer must fetch: batch it, but often
  // enough that a producer waiting for a large record sees progress.
  rx_.publish_every = rx_.size / 4;
  const Nanos now = clock_.now();
  peer_heartbeat_changed_at_.store(now, std::memory_order_relaxed); // local bookkeeping only
  last_own_heartbeat_.store(now, std::memory_order_relaxed);        // local bookkeeping only
}

Channel::~Channel() {
  // An area re-created by the peer is not ours any more: leave its endpoint lines alone.
  if (shared(control_->identity.generation).load(std::memory_order_relaxed) !=
      geometry_.generation) { // relaxed: only compared, nothing is read on its strength
    return;
  }
  const auto detached = static_cast<std::uint32_t>(EndpointState::detached);
  bool changed = false;
  {
    std::lock_guard lock(own_line_mutex_);
    // A failed endpoint stays failed: its peer must not mistake it for an orderly departure.
    if (own_state_ != detached && own_state_ != static_cast<std::uint32_t>(EndpointState::failed)) {
      own_state_ = detached;
      // Release: our last records are visible before the peer sees us gone.
      shared(control_->endpoint[side_].state).store(detached, std::memory_order_release);
      changed = true;
    }
  }
  if (changed && policy_ != NotifyPolicy::polling) {
    doorbell_.ring(Wake::data); // wake a peer sleeping on data so it sees the end of stream
    doorbell_.ring(Wake::space);
  }
}

} // namespace ivmc
