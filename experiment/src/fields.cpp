// The tables of fields: see fields.hpp.
#include "fields.hpp"

#include <algorithm>

namespace ivmc::experiment::detail {

using S = Scenario;

const std::vector<Field<S>>& scenario_fields() {
  static const std::vector<Field<S>> fields = {
      field("name", &S::name),
      field("description", &S::description),
      field("duration_s", &S::duration_s),
      field("warmup_s", &S::warmup_s),
      field("seed", &S::seed),
      field("latency_percentiles", &S::latency_percentiles),

      field("platform.hosts", &S::platform, &PlatformConfig::hosts),
      field("platform.hypervisor", &S::platform, &PlatformConfig::hypervisor),
      field("platform.guest_nic", &S::platform, &PlatformConfig::guest_nic),
      field("platform.link_gbps", &S::platform, &PlatformConfig::link_gbps),
      field("platform.link_latency_us", &S::platform, &PlatformConfig::link_latency_us),
      field("platform.migration_gbps", &S::platform, &PlatformConfig::migration_gbps),
      field("platform.hvm", &S::platform, &PlatformConfig::hvm),

      field("channel.enabled", &S::channel, &ChannelSettings::enabled),
      field("channel.layer", &S::channel, &ChannelSettings::layer),
      field("channel.ring_kib", &S::channel, &ChannelSettings::ring_kib),
      field("channel.notify", &S::channel, &ChannelSettings::notify),
      field("channel.atw_batch", &S::channel, &ChannelSettings::atw_batch),
      field("channel.atw_window_us", &S::channel, &ChannelSettings::atw_window_us),
      field("channel.spin_budget_us", &S::channel, &ChannelSettings::spin_budget_us),
      field("channel.migration", &S::channel, &ChannelSettings::migration),
      field("channel.trust", &S::channel, &ChannelSettings::trust),
      field("channel.trusted", &S::channel, &ChannelSettings::trusted),
      field("channel.copies", &S::channel, &ChannelSettings::copies),
      field("channel.tcp_only", &S::channel, &ChannelSettings::tcp_only),

      field("membership.detection", &S::membership, &MembershipConfig::detection),
      field("membership.period_ms", &S::membership, &MembershipConfig::period_ms),
      field("membership.phase_ms", &S::membership, &MembershipConfig::phase_ms),
      field("membership.propagation_delay_us", &S::membership,
            &MembershipConfig::propagation_delay_us),
      field("membership.period_min_ms", &S::membership, &MembershipConfig::period_min_ms),
      field("membership.period_max_ms", &S::membership, &MembershipConfig::period_max_ms),
      field("membership.probe_worth_ms", &S::membership, &MembershipConfig::probe_worth_ms),
      field("membership.rate_horizon_s", &S::membership, &MembershipConfig::rate_horizon_s),
      field("membership.watch_delay_us", &S::membership, &MembershipConfig::watch_delay_us),
      field("membership.race", &S::membership, &MembershipConfig::race),
      field("membership.stale_timeout_us", &S::membership, &MembershipConfig::stale_timeout_us),
      field("membership.probe_cost_us", &S::membership, &MembershipConfig::probe_cost_us),

      field("pool.enabled", &S::pool, &PoolSettings::enabled),
      field("pool.allocation", &S::pool, &PoolSettings::allocation),
      field("pool.pool_mib", &S::pool, &PoolSettings::pool_mib),
      field("pool.chunk_kib", &S::pool, &PoolSettings::chunk_kib),
      field("pool.max_pairs", &S::pool, &PoolSettings::max_pairs),
      field("pool.rebalance_ms", &S::pool, &PoolSettings::rebalance_ms),

      field("output.changes", &S::output, &OutputSettings::changes),

      // [preset]: metadata. A preset file names its system; to_toml writes the name too, so a
      // written scenario keeps saying which preset it came from without re-applying it.
      field("preset.name", &S::preset),
      field("preset.system", &S::preset_system),
      ignored<S>("preset.summary", Kind::string),
      ignored<S>("preset.survey", Kind::string),
  };
  return fields;
}

const std::vector<Field<VmConfig>>& vm_fields() {
  static const std::vector<Field<VmConfig>> fields = {
      field("name", &VmConfig::name),
      field("host", &VmConfig::host),
      field("ram_mib", &VmConfig::ram_mib),
  };
  return fields;
}

const std::vector<Field<WorkloadConfig>>& workload_fields() {
  using W = WorkloadConfig;
  static const std::vector<Field<W>> fields = {
      field("kind", &W::kind),
      field("from", &W::from),
      field("to", &W::to),
      field("message_bytes", &W::message_bytes),
      field("start_s", &W::start_s),
      field("stop_s", &W::stop_s),
      field("rate_per_s", &W::rate_per_s),
      field("arrivals", &W::arrivals),
  };
  return fields;
}

const std::vector<Field<EventConfig>>& event_fields() {
  using E = EventConfig;
  static const std::vector<Field<E>> fields = {
      field("kind", &E::kind), field("at_s", &E::at_s),       field("vm", &E::vm),
      field("host", &E::host), field("ram_mib", &E::ram_mib),
  };
  return fields;
}

const std::vector<Field<GeneratorConfig>>& generator_fields() {
  using G = GeneratorConfig;
  static const std::vector<Field<G>> fields = {
      field("kind", &G::kind),       field("rate_per_s", &G::rate_per_s), field("vms", &G::vms),
      field("start_s", &G::start_s), field("stop_s", &G::stop_s),
  };
  return fields;
}

bool is_list_name(std::string_view k) {
  return k == "vm" || k == "workload" || k == "event" || k == "generator";
}

std::vector<std::string> section_names() {
  std::vector<std::string> out;
  for (const auto& f : scenario_fields()) {
    const auto dot = f.key.find('.');
    if (dot == std::string_view::npos) continue;
    std::string sec(f.key.substr(0, dot));
    if (std::find(out.begin(), out.end(), sec) == out.end()) out.push_back(sec);
  }
  return out;
}

} // namespace ivmc::experiment::detail
