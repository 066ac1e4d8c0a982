// ivmc::Doorbell over two interdomain event channels, one per wake reason, each bound in its
// own xenevtchn handle (its own fd), so a sender waiting for space and a receiver waiting for
// data never take each other's events.
//
// Sticky rings: a notify that arrives before the wait stays queued in the evtchn device (the
// port is masked until we unmask it after reading it), so the next wait returns at once.
// A wait sleeps at most kLivenessSlice at a time and re-checks the lost flag in between: once
// the platform found the peer gone (its liveness byte cleared by the unmap notification, or
// its domain destroyed) and marked the channel dead, every wait ends with `failed` within a
// slice, never a hang. (Xen drops a notify to a dead peer silently, so the doorbell itself
// cannot tell.)
#pragma once

#include "ivmc/core/platform.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

typedef struct xenevtchn_handle xenevtchn_handle;

namespace ivmc::xen {

inline constexpr Nanos kLivenessSlice = 20'000'000;

class EventChannelDoorbell final : public Doorbell {
public:
  // Offering side: binds two unbound ports that `peer` may connect to.
  static std::unique_ptr<EventChannelDoorbell> offer(std::uint32_t peer);
  // Mapping side: connects to the offerer's two ports.
  static std::unique_ptr<EventChannelDoorbell>
  connect(std::uint32_t offerer, std::uint32_t data_port, std::uint32_t space_port);
  ~EventChannelDoorbell() override;

  void ring(Wake reason) override;
  WaitResult wait(Wake reason, Nanos timeout) override;

  // Local port of a reason: the offerer publishes these; the unmap notification uses data's.
  std::uint32_t local_port(Wake reason) const { return ports_[index(reason)]; }
  // The platform learnt that the peer is gone: every wait fails from now on.
  void declare_lost();
  // Relaxed: diagnostic only.
  int last_errno() const { return last_errno_.load(std::memory_order_relaxed); }

private:
  EventChannelDoorbell() = default;
  static constexpr int index(Wake w) { return w == Wake::data ? 0 : 1; }

  xenevtchn_handle* handles_[2] = {nullptr, nullptr};
  std::uint32_t ports_[2] = {0, 0};
  std::atomic<bool> lost_{false};  // release/acquire: what led to the loss is visible
  std::atomic<int> last_errno_{0}; // relaxed: diagnostic only
};

} // namespace ivmc::xen
