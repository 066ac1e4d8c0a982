// The scenario's closed sets of choices, parsed once where a scenario is loaded (TOML, `--set`,
// Python dicts) and typed from then on: workload kinds, membership detection, hypervisor paths,
// trust, arrivals, event kinds, and the core's notification, race and pool policies.
//
// Each set has one text per value, the text scenario files use (scenarios/FORMAT.md):
// to_string(value) writes it, parse<E>(text) reads it back (nothing on any other text), and
// choice_list<E>() lists them for messages ("tcp_stream, udp_stream, tcp_rr, udp_rr").
#pragma once

#include "ivmc/core/channel.hpp"
#include "ivmc/core/link.hpp"
#include "ivmc/core/pool.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ivmc::experiment {

// What a workload does (netperf's names): a stream of messages one way, or request/response
// transactions; over TCP (reliable, flow-controlled) or UDP (the network path drops).
enum class WorkloadKind : std::uint8_t { tcp_stream, udp_stream, tcp_rr, udp_rr };
// How VMs learn who shares their host (survey Table V): a static list (XWAY), group
// registration (IVC), a periodic scan (XenLoop, MemPipe), an adaptive scan, an event watch
// (XenVMC, MMNet), a synchronous update inside the migration (prevention). Texts: "static",
// "group", "periodic", "adaptive", "watch", "sync".
enum class Detection : std::uint8_t { static_list, group, periodic, adaptive, watch, sync };
// The hypervisor network path co-resident VMs take when they do not use the channel.
enum class Hypervisor : std::uint8_t { xen, kvm };
// kvm: the guests' network device.
enum class GuestNic : std::uint8_t { virtio, emulated };
// Which co-resident peers may open a channel: any (open), or only the `trusted` pairs (list).
enum class Trust : std::uint8_t { open, list };
// A rate-limited stream's send times: evenly spaced, or a Poisson process.
enum class Arrivals : std::uint8_t { uniform, poisson };
// A scripted [[event]] or a [[generator]]'s events.
enum class EventKind : std::uint8_t { migrate, create, shutdown };

// One value of a set and its text.
template <class E>
struct Choice {
  E value;
  std::string_view text;
};

// Every value of E with its text, in the order messages list them. Defined for the enums above
// and for NotifyPolicy, RacePolicy and PoolPolicy.
template <class E>
std::span<const Choice<E>> choices();

template <>
std::span<const Choice<WorkloadKind>> choices<WorkloadKind>();
template <>
std::span<const Choice<Detection>> choices<Detection>();
template <>
std::span<const Choice<Hypervisor>> choices<Hypervisor>();
template <>
std::span<const Choice<GuestNic>> choices<GuestNic>();
template <>
std::span<const Choice<Trust>> choices<Trust>();
template <>
std::span<const Choice<Arrivals>> choices<Arrivals>();
template <>
std::span<const Choice<EventKind>> choices<EventKind>();
template <>
std::span<const Choice<NotifyPolicy>> choices<NotifyPolicy>();
template <>
std::span<const Choice<RacePolicy>> choices<RacePolicy>();
template <>
std::span<const Choice<PoolPolicy>> choices<PoolPolicy>();

// The value whose text is exactly `text`, or nothing.
template <class E>
std::optional<E> parse(std::string_view text) {
  for (const auto& c : choices<E>())
    if (c.text == text) return c.value;
  return std::nullopt;
}

// The texts of E's values, comma-separated, for messages.
template <class E>
std::string choice_list() {
  std::string out;
  for (const auto& c : choices<E>()) {
    if (!out.empty()) out += ", ";
    out += c.text;
  }
  return out;
}

// A value's text (the core's enums have their own to_string in namespace ivmc).
std::string_view to_string(WorkloadKind v);
std::string_view to_string(Detection v);
std::string_view to_string(Hypervisor v);
std::string_view to_string(GuestNic v);
std::string_view to_string(Trust v);
std::string_view to_string(Arrivals v);
std::string_view to_string(EventKind v);

// tcp_rr and udp_rr: transactions (a request, then its response).
constexpr bool is_request_response(WorkloadKind k) {
  return k == WorkloadKind::tcp_rr || k == WorkloadKind::udp_rr;
}
// udp_stream and udp_rr: datagrams (the network path drops instead of waiting).
constexpr bool is_udp(WorkloadKind k) {
  return k == WorkloadKind::udp_stream || k == WorkloadKind::udp_rr;
}

} // namespace ivmc::experiment
