// The scenario's VMs, membership source and events on the model: scripted [[event]]s and
// Poisson [[generator]]s, each VM lifecycle change reaching the membership source and the links.
#include "world.hpp"

#include "ivmc/experiment/draws.hpp"
#include "ivmc/experiment/membership.hpp"

#include <fmt/format.h>

#include <map>

namespace ivmc::sim {

void World::setup_events() {
  Topology& topo = model_.topology();
  std::vector<std::pair<std::string, std::size_t>> initial;
  for (const VmConfig& v : s_.vms) {
    const VmId id = static_cast<VmId>(vms_.size() + 1);
    vms_.push_back({id, v.name});
    ids_[v.name] = id;
    initial.push_back({v.name, v.host});
  }
  // VMs created by events get ids too (their names are known up front).
  for (const EventConfig& e : s_.events) {
    if (e.kind == EventKind::create && !ids_.count(e.vm)) {
      const VmId id = static_cast<VmId>(vms_.size() + 1);
      vms_.push_back({id, e.vm});
      ids_[e.vm] = id;
    }
  }
  const auto address = experiment::vm_address;
  // The VMs present at start exist before anything runs (views start from the truth).
  for (const VmConfig& v : s_.vms) {
    model_.place_vm(ids_[v.name], address(ids_[v.name]), static_cast<HostId>(v.host),
                    v.ram_mib << 20);
  }
  // Membership.
  const MembershipParams mp =
      experiment::membership_params(s_, std::map<std::string, VmId>(ids_.begin(), ids_.end()));
  source_ = make_membership_source(experiment::to_string(s_.membership.detection), topo, mp);
  group_ = dynamic_cast<GroupRegistrationSource*>(source_.get());
  if (group_ != nullptr) {
    for (const VmConfig& v : s_.vms) group_->register_vm(ids_[v.name], 1, 0);
  }
  // The model's clock never goes back: the race-window index may forget closed windows.
  windows_ = std::make_unique<RaceWindows>(*source_, RaceWindows::Queries::in_time_order);
  keeping_ = dynamic_cast<ViewKeepingSource*>(source_.get());
  model_.attach(*source_);
  source_->subscribe([this](VmId observer, Nanos) {
    // A view change reaches the VM's links at once (inside a synchronous update: before the
    // move completes, while the old channel still works).
    const auto of = pipes_of_.find(observer);
    if (of == pipes_of_.end()) return;
    for (Pipe* pp : of->second) {
      Pipe& p = *pp;
      if (p.from != observer || p.tx_busy) continue;
      if (p.sender->path() == PathKind::local && p.tx_gen != nullptr &&
          (p.tx_gen->broken || !p.tx_gen->tx->can_send(64))) {
        continue; // no room for the marker now: the next send switches
      }
      p.sender->refresh();
    }
  });
  model_.on_topology([this](const TopologyEvent& ev) {
    // The sources saw it first and numbered it: the n-th event is change n.
    if (s_.output.changes) change_stats(events_seen_).event = ev;
    ++events_seen_;
    retire_records(); // once per change: what the earlier changes no longer need leaves
    if (ev.kind == TopologyEvent::Kind::migrate) {
      break_channels_of(ev.vm, ev.from);
      if (group_ != nullptr) { // IVC: the guest re-registers from its new host after a delay
        const VmId vm = ev.vm;
        model_.at(model_.now_ns() + ns(s_.membership.watch_delay_us * 1e3), [this, vm] {
          if (model_.topology().has_vm(vm)) group_->register_vm(vm, 1, model_.now_ns());
        });
      }
    } else if (ev.kind == TopologyEvent::Kind::shutdown) {
      break_channels_of(ev.vm, ev.from);
    } else if (ev.kind == TopologyEvent::Kind::create && group_ != nullptr) {
      const VmId vm = ev.vm;
      model_.at(model_.now_ns() + ns(s_.membership.watch_delay_us * 1e3), [this, vm] {
        if (model_.topology().has_vm(vm)) group_->register_vm(vm, 1, model_.now_ns());
      });
    }
  });
  std::unordered_map<VmId, std::size_t> ram;
  for (const VmConfig& v : s_.vms) ram[ids_[v.name]] = v.ram_mib;
  for (const EventConfig& e : s_.events) {
    const VmId id = ids_.at(e.vm);
    if (e.kind == EventKind::migrate) model_.migrate_at(e.at_s, id, static_cast<HostId>(e.host));
    if (e.kind == EventKind::shutdown) model_.shutdown_at(e.at_s, id);
    if (e.kind == EventKind::create) {
      model_.create_vm_at(e.at_s, id, address(id), static_cast<HostId>(e.host), e.ram_mib << 20);
    }
  }
  // Generators: drawn first from the run's seed, as every backend draws them (draws.hpp).
  for (const experiment::DrawnEvent& e : experiment::draw_generators(
           s_, std::map<std::string, VmId>(ids_.begin(), ids_.end()), rng_)) {
    const VmId vm = e.vm;
    const double t = e.at_s;
    if (e.kind == EventKind::migrate) {
      // Another host, uniformly; the model skips it if the VM is moving at that time.
      const std::size_t other = e.other;
      model_.at_sync(ns(t * 1e9), [this, vm, other, t] {
        if (!model_.topology().has_vm(vm) || model_.migrating(vm)) return;
        const HostId here = model_.topology().host_of(vm);
        const HostId to = static_cast<HostId>(other >= here ? other + 1 : other);
        model_.migrate_at(t, vm, to);
      });
    } else if (e.kind == EventKind::shutdown) {
      model_.shutdown_at(t, vm);
    } else {
      model_.create_vm_at(t, vm, address(vm), e.host, ram.count(vm) ? ram[vm] << 20 : 1u << 30);
    }
  }

  // Pools: the proportional policy re-assesses demand periodically.
  if (!pools_.empty() && pools_[0]->config().policy == PoolPolicy::proportional) {
    const Nanos period = std::max<Nanos>(ns(s_.pool.rebalance_ms * 1e6), kUs);
    auto tick = std::make_shared<std::function<void()>>();
    *tick = [this, period, tick] {
      rebalance_pools();
      if (model_.now_ns() + period <= end_) model_.at(model_.now_ns() + period, *tick);
    };
    model_.at(period, *tick);
  }
  if (!pools_.empty()) { // utilisation, sampled every millisecond
    auto sample = std::make_shared<std::function<void()>>();
    *sample = [this, sample] {
      if (measured(model_.now_ns())) {
        double u = 0;
        for (auto& pool : pools_) u += pool->allocated_fraction();
        pool_util_sum_ += u / static_cast<double>(pools_.size());
        ++pool_util_samples_;
      }
      if (model_.now_ns() + kMs <= end_) model_.at(model_.now_ns() + kMs, *sample);
    };
    model_.at(0, *sample);
  }
}

} // namespace ivmc::sim
