// The SimGrid adapter: see include/ivmc/sim/model.hpp.
#include "ivmc/sim/model.hpp"

#include <simgrid/plugins/live_migration.h>
#include <simgrid/s4u.hpp>
#include <simgrid/s4u/VirtualMachine.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace sg4 = simgrid::s4u;

namespace ivmc::sim {

Nanos SimClock::now() {
  return std::llround(sg4::Engine::get_clock() * 1e9);
}

namespace {

struct ScriptedEvent {
  enum class Kind { create, migrate, shutdown } kind;
  double time;
  VmId vm;
  HostId host; // create: where; migrate: to
  VmAddress address;
  std::size_t ram = 0;
};

} // namespace

struct Model::Impl {
  PlatformSpec spec;
  std::unique_ptr<sg4::Engine> engine;
  std::vector<sg4::Host*> hosts;
  Topology topology;
  SimClock clock;
  std::vector<MembershipSource*> sources;
  std::vector<ScriptedEvent> script;
  std::unordered_map<VmId, sg4::VirtualMachine*> vms;
  std::unordered_map<const sg4::VirtualMachine*, VmId> ids;
  std::map<VmId, Migration> in_flight;
  std::vector<Migration> migrations;
  std::uint64_t end_signals = 0;
  bool script_done = false;

  HostId host_id(const sg4::Host* h) const {
    const auto it = std::find(hosts.begin(), hosts.end(), h);
    if (it == hosts.end()) throw std::logic_error("sim: a VM ended up on an unknown host");
    return static_cast<HostId>(it - hosts.begin());
  }
  void report(const TopologyEvent& ev) {
    for (MembershipSource* s : sources) s->on_event(ev);
  }
  // SimGrid 3.32 fires on_migration_end twice per migration: apply the first, ignore the rest.
  void migration_ended(const sg4::VirtualMachine& vm) {
    ++end_signals;
    const auto id = ids.find(&vm);
    if (id == ids.end()) return;
    const HostId now_on = host_id(vm.get_pm());
    if (topology.host_of(id->second) == now_on) return; // already applied
    const Nanos now = clock.now();
    report(topology.migrate_vm(id->second, now_on, now));
    auto flight = in_flight.find(id->second);
    if (flight != in_flight.end()) {
      flight->second.end = sg4::Engine::get_clock();
      migrations.push_back(flight->second);
      in_flight.erase(flight);
    }
  }
  void play(const ScriptedEvent& ev) {
    const Nanos now = clock.now();
    switch (ev.kind) {
    case ScriptedEvent::Kind::create: {
      auto* vm = hosts.at(ev.host)->create_vm("vm" + std::to_string(ev.vm), 1, ev.ram);
      sg_vm_set_migration_speed(vm, spec.migration_speed);
      vm->start();
      vms[ev.vm] = vm;
      ids[vm] = ev.vm;
      report(topology.create_vm(ev.vm, ev.address, ev.host, now));
      break;
    }
    case ScriptedEvent::Kind::migrate: {
      sg4::VirtualMachine* vm = vms.at(ev.vm);
      in_flight[ev.vm] = {ev.vm, topology.host_of(ev.vm), ev.host, sg4::Engine::get_clock(), 0};
      sg4::Host* to = hosts.at(ev.host);
      // sg_vm_migrate blocks its caller for the whole pre-copy: one actor per migration.
      sg4::Actor::create("migrate-vm" + std::to_string(ev.vm), vm->get_pm(),
                         [vm, to] { sg_vm_migrate(vm, to); });
      break;
    }
    case ScriptedEvent::Kind::shutdown: {
      sg4::VirtualMachine* vm = vms.at(ev.vm);
      report(topology.shutdown_vm(ev.vm, now));
      ids.erase(vm);
      vms.erase(ev.vm);
      vm->destroy();
      break;
    }
    }
  }
};

Model::Model(const PlatformSpec& spec) : impl_(std::make_unique<Impl>()) {
  impl_->spec = spec;
  if (spec.hosts < 1) throw std::invalid_argument("sim: a platform needs at least one host");
  static int argc = 1;
  static char name[] = "ivmc";
  static char* argv[] = {name, nullptr};
  impl_->engine = std::make_unique<sg4::Engine>(&argc, argv);
  sg_vm_live_migration_plugin_init();
  // The platform in code: a star of hosts, each with its own link (its NIC) to a switch, so
  // host A talks to host B over A's link and B's link. Scales linearly with hosts.
  auto* zone = sg4::create_star_zone("world");
  for (std::size_t h = 0; h < spec.hosts; ++h) {
    auto* host = zone->create_host("pm" + std::to_string(h), spec.host_flops)->seal();
    auto* nic = zone->create_link("nic" + std::to_string(h), spec.link_bandwidth)
                    ->set_latency(spec.link_latency / 2) // two hops make one host-to-host latency
                    ->seal();
    zone->add_route(host->get_netpoint(), nullptr, nullptr, nullptr, {sg4::LinkInRoute(nic)}, true);
    impl_->hosts.push_back(host);
    impl_->topology.add_host(static_cast<HostId>(h));
  }
  zone->seal();
  Impl* impl = impl_.get();
  sg4::VirtualMachine::on_migration_end_cb(
      [impl](const sg4::VirtualMachine& vm) { impl->migration_ended(vm); });
}

Model::~Model() = default;

Topology& Model::topology() {
  return impl_->topology;
}
Clock& Model::clock() {
  return impl_->clock;
}
void Model::attach(MembershipSource& source) {
  impl_->sources.push_back(&source);
}
double Model::now() const {
  return sg4::Engine::get_clock();
}
const std::vector<Migration>& Model::migrations() const {
  return impl_->migrations;
}
std::uint64_t Model::migration_end_signals() const {
  return impl_->end_signals;
}

void Model::create_vm_at(double t, VmId vm, VmAddress address, HostId host, std::size_t ram) {
  impl_->script.push_back({ScriptedEvent::Kind::create, t, vm, host, std::move(address), ram});
}
void Model::migrate_at(double t, VmId vm, HostId to) {
  impl_->script.push_back({ScriptedEvent::Kind::migrate, t, vm, to, {}, 0});
}
void Model::shutdown_at(double t, VmId vm) {
  impl_->script.push_back({ScriptedEvent::Kind::shutdown, t, vm, 0, {}, 0});
}

void Model::run() {
  Impl* impl = impl_.get();
  std::stable_sort(impl->script.begin(), impl->script.end(),
                   [](const ScriptedEvent& a, const ScriptedEvent& b) { return a.time < b.time; });
  sg4::Actor::create("controller", impl->hosts[0], [impl] {
    for (const ScriptedEvent& ev : impl->script) {
      sg4::this_actor::sleep_until(ev.time);
      impl->play(ev);
    }
    impl->script_done = true;
  });
  if (!impl->sources.empty()) {
    // Timed membership work at its exact due times; a daemon, so it ends with the others.
    sg4::Actor::create("membership", impl->hosts[0], [impl] {
      for (;;) {
        Nanos due = kNever;
        for (MembershipSource* s : impl->sources) due = std::min(due, s->next_due());
        const double next = due == kNever ? sg4::Engine::get_clock() + 1.0 : due / 1e9;
        sg4::this_actor::sleep_until(next);
        const Nanos now = impl->clock.now();
        for (MembershipSource* s : impl->sources) {
          while (s->next_due() <= now) s->run_due(s->next_due());
        }
      }
    })->daemonize();
  }
  impl->engine->run();
}

} // namespace ivmc::sim
