// The texts of the scenario's choices (choices.hpp). The core's policies keep the core's own
// texts (to_string(NotifyPolicy) and friends), so a scenario file and the core agree.
#include "ivmc/experiment/choices.hpp"

namespace ivmc::experiment {
namespace {

template <class E>
std::string_view text_of(E v) {
  for (const auto& c : choices<E>())
    if (c.value == v) return c.text;
  return "?";
}

template <class E>
Choice<E> core_choice(E v) {
  return {v, to_string(v)};
}

} // namespace

template <>
std::span<const Choice<WorkloadKind>> choices<WorkloadKind>() {
  static constexpr Choice<WorkloadKind> all[] = {{WorkloadKind::tcp_stream, "tcp_stream"},
                                                 {WorkloadKind::udp_stream, "udp_stream"},
                                                 {WorkloadKind::tcp_rr, "tcp_rr"},
                                                 {WorkloadKind::udp_rr, "udp_rr"}};
  return all;
}

template <>
std::span<const Choice<Detection>> choices<Detection>() {
  static constexpr Choice<Detection> all[] = {
      {Detection::static_list, "static"}, {Detection::group, "group"},
      {Detection::periodic, "periodic"},  {Detection::adaptive, "adaptive"},
      {Detection::watch, "watch"},        {Detection::sync, "sync"}};
  return all;
}

template <>
std::span<const Choice<Hypervisor>> choices<Hypervisor>() {
  static constexpr Choice<Hypervisor> all[] = {{Hypervisor::xen, "xen"}, {Hypervisor::kvm, "kvm"}};
  return all;
}

template <>
std::span<const Choice<GuestNic>> choices<GuestNic>() {
  static constexpr Choice<GuestNic> all[] = {{GuestNic::virtio, "virtio"},
                                             {GuestNic::emulated, "emulated"}};
  return all;
}

template <>
std::span<const Choice<Trust>> choices<Trust>() {
  static constexpr Choice<Trust> all[] = {{Trust::open, "open"}, {Trust::list, "list"}};
  return all;
}

template <>
std::span<const Choice<Arrivals>> choices<Arrivals>() {
  static constexpr Choice<Arrivals> all[] = {{Arrivals::uniform, "uniform"},
                                             {Arrivals::poisson, "poisson"}};
  return all;
}

template <>
std::span<const Choice<EventKind>> choices<EventKind>() {
  static constexpr Choice<EventKind> all[] = {{EventKind::migrate, "migrate"},
                                              {EventKind::create, "create"},
                                              {EventKind::shutdown, "shutdown"}};
  return all;
}

template <>
std::span<const Choice<NotifyPolicy>> choices<NotifyPolicy>() {
  static const Choice<NotifyPolicy> all[] = {
      core_choice(NotifyPolicy::polling), core_choice(NotifyPolicy::on_demand),
      core_choice(NotifyPolicy::per_packet), core_choice(NotifyPolicy::atw),
      core_choice(NotifyPolicy::spin_then_block)};
  return all;
}

template <>
std::span<const Choice<RacePolicy>> choices<RacePolicy>() {
  static const Choice<RacePolicy> all[] = {core_choice(RacePolicy::prevention),
                                           core_choice(RacePolicy::resolution),
                                           core_choice(RacePolicy::none)};
  return all;
}

template <>
std::span<const Choice<PoolPolicy>> choices<PoolPolicy>() {
  static const Choice<PoolPolicy> all[] = {core_choice(PoolPolicy::static_equal),
                                           core_choice(PoolPolicy::proportional)};
  return all;
}

std::string_view to_string(WorkloadKind v) {
  return text_of(v);
}
std::string_view to_string(Detection v) {
  return text_of(v);
}
std::string_view to_string(Hypervisor v) {
  return text_of(v);
}
std::string_view to_string(GuestNic v) {
  return text_of(v);
}
std::string_view to_string(Trust v) {
  return text_of(v);
}
std::string_view to_string(Arrivals v) {
  return text_of(v);
}
std::string_view to_string(EventKind v) {
  return text_of(v);
}

} // namespace ivmc::experiment
