// The SimGrid adapter: see include/ivmc/sim/model.hpp.
#include "ivmc/sim/model.hpp"

#include <simgrid/plugins/live_migration.h>
#include <simgrid/s4u.hpp>
#include <simgrid/s4u/VirtualMachine.hpp>
#include <xbt/log.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <queue>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace sg4 = simgrid::s4u;

namespace ivmc::sim {

namespace {

struct ScriptedEvent {
  enum class Kind { create, migrate, shutdown } kind;
  double time;
  VmId vm;
  HostId host; // create: where; migrate: to
  VmAddress address;
  std::size_t ram = 0;
};

// The heap holds small plain entries; the callbacks stay put in a slot table (re-used through a
// free list), so sifting moves 24 bytes, not a std::function.
struct QueuedEvent {
  Nanos time;
  std::uint64_t order; // scheduling order: ties run first-come first-served
  std::uint32_t slot;  // the callback's index in Impl::callbacks
  bool needs_sync;     // touches SimGrid (VM lifecycle): SimGrid's clock must be at `time`
  bool operator>(const QueuedEvent& o) const {
    return time != o.time ? time > o.time : order > o.order;
  }
};

Nanos to_nanos(double seconds) {
  return std::llround(seconds * 1e9);
}

// SimGrid logs through XBT to stderr by default, which would mix its lines (numerical-accuracy
// warnings, configuration notes) into ivmc's output. They go to `path` instead, opened for
// appending and line-buffered (each line one write(), whole, among a sweep's parallel runs), or,
// without a path, only critical ones stay on stderr. XBT's own control strings split at spaces
// and its file appender truncates, so the stream appender takes a FILE* opened here.
void route_simgrid_log(const std::string& path) {
  if (!path.empty()) {
    if (FILE* f = std::fopen(path.c_str(), "a")) {
      std::setvbuf(f, nullptr, _IOLBF, 0);
      std::fprintf(f, "ivmc: SimGrid log of process %d\n", static_cast<int>(::getpid()));
      xbt_log_appender_set(&_XBT_LOGV(XBT_LOG_ROOT_CAT), xbt_log_appender_stream(f));
      return; // the FILE lives as long as the process (one engine per process)
    }
  }
  xbt_log_control_set("root.thres:critical");
}

} // namespace

struct Model::Impl {
  Nanos now = 0;
  PlatformSpec spec;
  std::unique_ptr<sg4::Engine> engine;
  std::vector<sg4::Host*> hosts;
  Topology topology;
  SimClock clock{now};
  std::vector<MembershipSource*> sources;
  std::vector<std::function<void(const TopologyEvent&)>> observers;
  std::vector<ScriptedEvent> script;
  std::function<void(double)> progress; // on_progress
  std::priority_queue<QueuedEvent, std::vector<QueuedEvent>, std::greater<>> queue;
  std::vector<Model::Callback> callbacks;
  std::vector<std::uint32_t> free_slots;
  std::uint64_t scheduled = 0, events_run = 0, skipped = 0;
  Nanos stop = kNever;
  sg4::MutexPtr mutex;
  sg4::ConditionVariablePtr migration_done;
  // SimGrid VMs exist only while they migrate: SimGrid's VM model visits every VM at each of
  // its steps, so 10,000 idle VMs made each step O(VMs). An idle VM moves nothing in SimGrid
  // (no CPU or network use), so leaving it out changes no migration's duration.
  std::unordered_map<VmId, std::size_t> ram;                // bytes, of every VM alive
  std::unordered_map<const sg4::VirtualMachine*, VmId> ids; // the migrating ones
  std::unordered_map<const sg4::Host*, HostId> host_ids;
  std::uint64_t sim_vms_made = 0; // names SimGrid VMs uniquely (a name is a host's)
  std::map<VmId, Migration> in_flight;
  std::vector<Migration> migrations;
  std::uint64_t end_signals = 0;

  HostId host_id(const sg4::Host* h) const {
    const auto it = host_ids.find(h);
    if (it == host_ids.end()) throw std::logic_error("sim: a VM ended up on an unknown host");
    return it->second;
  }
  void report(const TopologyEvent& ev) {
    for (MembershipSource* s : sources) s->on_event(ev);
    for (auto& o : observers) o(ev);
  }
  // Before run(): kept in the script. During it (an event generator deciding at run time): into
  // the queue.
  bool running = false;
  void add(ScriptedEvent ev) {
    if (!running) {
      script.push_back(std::move(ev));
      return;
    }
    schedule(to_nanos(ev.time), true, [this, ev] { play(ev); });
  }
  std::multiset<Nanos> sync_times; // of the queued events that touch SimGrid
  void schedule(Nanos t, bool sync, Model::Callback cb) {
    t = std::max(t, now);
    if (sync) sync_times.insert(t);
    std::uint32_t slot;
    if (free_slots.empty()) {
      slot = static_cast<std::uint32_t>(callbacks.size());
      callbacks.push_back(std::move(cb));
    } else {
      slot = free_slots.back();
      free_slots.pop_back();
      callbacks[slot] = std::move(cb);
    }
    queue.push({t, scheduled++, slot, sync});
  }
  // SimGrid 3.32 fires on_migration_end twice per migration: apply the first, ignore the rest.
  // SimGrid reports a migration's end while it runs ahead of the queue (see run()): the end is
  // queued at its own time and applied when the queue gets there, after every earlier event.
  // 3.32 fires the signal twice per migration: the first one takes the in-flight entry.
  void migration_ended(const sg4::VirtualMachine& vm) {
    ++end_signals;
    const auto id = ids.find(&vm);
    if (id == ids.end()) return;
    auto flight = in_flight.find(id->second);
    if (flight == in_flight.end()) return; // the second signal of this migration
    const HostId now_on = host_id(vm.get_pm());
    // The second signal can come a little later than the first, when the next migration of
    // the same VM may already be under way: that one has not arrived yet, so the VM is not on
    // its destination, and the stale signal is ignored.
    if (now_on != flight->second.to) return;
    Migration m = flight->second;
    in_flight.erase(flight);
    m.end = sg4::Engine::get_clock();
    schedule(to_nanos(m.end), false, [this, m, now_on] {
      report(topology.migrate_vm(m.vm, now_on, now));
      migrations.push_back(m);
    });
    if (migration_done) migration_done->notify_all(); // the scheduler re-plans from here
  }
  void play(const ScriptedEvent& ev) {
    switch (ev.kind) {
    case ScriptedEvent::Kind::create: {
      if (topology.has_vm(ev.vm)) {
        ++skipped;
        return;
      }
      ram[ev.vm] = ev.ram;
      report(topology.create_vm(ev.vm, ev.address, ev.host, now));
      break;
    }
    case ScriptedEvent::Kind::migrate: {
      if (!topology.has_vm(ev.vm) || in_flight.count(ev.vm) != 0 ||
          topology.host_of(ev.vm) == ev.host) {
        ++skipped; // gone, already moving, or already there
        return;
      }
      const HostId from = topology.host_of(ev.vm);
      in_flight[ev.vm] = {ev.vm, from, ev.host, sg4::Engine::get_clock(), 0};
      // The VM enters SimGrid for its migration, with its RAM, on the host it leaves.
      auto* vm = hosts.at(from)->create_vm(
          "vm" + std::to_string(ev.vm) + "." + std::to_string(sim_vms_made++), 1, ram.at(ev.vm));
      sg_vm_set_migration_speed(vm, spec.migration_speed);
      vm->start();
      ids[vm] = ev.vm;
      sg4::Host* to = hosts.at(ev.host);
      // sg_vm_migrate blocks its caller for the whole pre-copy: one actor per migration. Once
      // it returns, SimGrid has fired both of its end signals: the VM leaves SimGrid again.
      sg4::Actor::create("migrate-vm" + std::to_string(ev.vm), vm->get_pm(), [this, vm, to] {
        sg_vm_migrate(vm, to);
        ids.erase(vm);
        vm->destroy();
      });
      break;
    }
    case ScriptedEvent::Kind::shutdown: {
      if (!topology.has_vm(ev.vm) || in_flight.count(ev.vm) != 0) {
        ++skipped; // gone already, or moving (the plugin cannot destroy a migrating VM)
        return;
      }
      report(topology.shutdown_vm(ev.vm, now));
      ram.erase(ev.vm);
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
  route_simgrid_log(spec.simgrid_log);
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
    impl_->host_ids[host] = static_cast<HostId>(h);
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

void Model::place_vm(VmId vm, VmAddress address, HostId host, std::size_t ram) {
  impl_->topology.create_vm(vm, address, host, 0);
  impl_->ram[vm] = ram;
}
void Model::create_vm_at(double t, VmId vm, VmAddress address, HostId host, std::size_t ram) {
  impl_->add({ScriptedEvent::Kind::create, t, vm, host, std::move(address), ram});
}
void Model::migrate_at(double t, VmId vm, HostId to) {
  impl_->add({ScriptedEvent::Kind::migrate, t, vm, to, {}, 0});
}
void Model::shutdown_at(double t, VmId vm) {
  impl_->add({ScriptedEvent::Kind::shutdown, t, vm, 0, {}, 0});
}

void Model::at(Nanos t, Callback callback) {
  impl_->schedule(t, false, std::move(callback));
}
void Model::at_sync(Nanos t, Callback callback) {
  impl_->schedule(t, true, std::move(callback));
}
void Model::on_topology(std::function<void(const TopologyEvent&)> callback) {
  impl_->observers.push_back(std::move(callback));
}
void Model::on_progress(std::function<void(double)> callback) {
  impl_->progress = std::move(callback);
}
void Model::stop_at(double t) {
  impl_->stop = to_nanos(t);
}
std::uint64_t Model::skipped_events() const {
  return impl_->skipped;
}
Nanos Model::now_ns() const {
  return impl_->now;
}
std::uint64_t Model::events() const {
  return impl_->events_run;
}
bool Model::migrating(VmId vm) const {
  return impl_->in_flight.count(vm) != 0;
}

void Model::run() {
  Impl* impl = impl_.get();
  for (const ScriptedEvent& ev : impl->script) {
    impl->schedule(to_nanos(ev.time), true, [impl, ev] { impl->play(ev); });
  }
  impl->script.clear();
  impl->running = true;
  impl->mutex = sg4::Mutex::create();
  impl->migration_done = sg4::ConditionVariable::create();
  sg4::Actor::create("scheduler", impl->hosts[0], [impl] {
    std::unique_lock<sg4::Mutex> lock(*impl->mutex);
    for (;;) {
      Nanos due = kNever; // the membership sources' timed work
      for (MembershipSource* s : impl->sources) due = std::min(due, s->next_due());
      const Nanos queued = impl->queue.empty() ? kNever : impl->queue.top().time;
      const Nanos next = std::min(due, queued);
      const bool moving = !impl->in_flight.empty();
      // Without a stop time the run lasts while events or migrations remain (timed membership
      // work alone, a scanner for ever, does not keep it going).
      if (!moving &&
          (std::min(next, impl->stop) == kNever || (impl->stop == kNever && queued == kNever))) {
        break;
      }
      const double sim_clock = sg4::Engine::get_clock();
      if (moving) {
        // Our events do not touch SimGrid, so SimGrid runs ahead alone, up to the next event
        // that does (a VM lifecycle event) or the stop: one wait for many events. A migration
        // ending meanwhile wakes us and is queued at its own time (migration_ended). Events are
        // only taken once SimGrid's clock has passed them, so no end is learnt too late.
        const Nanos horizon =
            std::min(impl->sync_times.empty() ? kNever : *impl->sync_times.begin(), impl->stop);
        if (horizon == kNever) {
          impl->migration_done->wait(lock);
          continue;
        }
        if (sim_clock < horizon / 1e9) {
          impl->migration_done->wait_until(lock, horizon / 1e9);
          continue; // re-plan: an end may have been queued before `next`
        }
      } else if (queued <= due && impl->queue.top().needs_sync && next <= impl->stop &&
                 sim_clock < next / 1e9) {
        sg4::this_actor::sleep_until(next / 1e9); // a VM lifecycle event: SimGrid catches up
      }
      if (next > impl->stop) {
        impl->now = impl->stop;
        break;
      }
      impl->now = std::max(impl->now, next);
      if (queued <= due) {
        // Copy out first: the callback may schedule more events.
        const QueuedEvent ev = impl->queue.top();
        impl->queue.pop();
        if (ev.needs_sync) impl->sync_times.erase(impl->sync_times.find(ev.time));
        ++impl->events_run;
        // Progress: one test per event, the callback every 4096 (a few ms of wall time).
        if ((impl->events_run & 4095) == 0 && impl->progress) impl->progress(impl->now / 1e9);
        Callback callback = std::move(impl->callbacks[ev.slot]); // it may schedule more
        impl->free_slots.push_back(ev.slot);
        callback();
      } else {
        for (MembershipSource* s : impl->sources) {
          while (s->next_due() <= impl->now) s->run_due(s->next_due());
        }
      }
    }
    sg4::Actor::kill_all(); // migrations still under way at the stop time end with the run
  });
  impl->engine->run();
}

} // namespace ivmc::sim
