// One simulated run: the scenario's VMs on the SimGrid model, its workloads as links between
// them, and the core's channel, link, membership, race and pool code driving them in
// simulated time. See ARCHITECTURE.md ("one message in the simulator") and docs/metrics.md.
//
// Every endpoint is a small state machine whose steps are events in the model's queue. A step
// does the real thing to real core objects (a Channel::send into a real ring, a
// LinkSender::send that decides the path) at its simulated instant, and the cost models say
// how long it takes. Nothing here blocks: the channel is used through can_send() and
// request_wake(), and its doorbells schedule the woken endpoint's next step.
#include "ivmc/core/channel.hpp"
#include "ivmc/core/link.hpp"
#include "ivmc/core/membership_sources.hpp"
#include "ivmc/core/pool.hpp"
#include "ivmc/core/race_ledger.hpp"
#include "ivmc/sim/costs.hpp"
#include "ivmc/sim/model.hpp"
#include "ivmc/sim/run.hpp"

#include "ivmc/experiment/validate.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <new>
#include <random>
#include <stdexcept>
#include <unordered_map>

namespace ivmc::sim {

using experiment::Arrivals;
using experiment::Detection;
using experiment::EventConfig;
using experiment::EventKind;
using experiment::GeneratorConfig;
using experiment::GuestNic;
using experiment::Hypervisor;
using experiment::RunResult;
using experiment::Scenario;
using experiment::ScenarioError;
using experiment::Trust;
using experiment::VmConfig;
using experiment::WorkloadConfig;

class World;

namespace {

constexpr Nanos kUs = 1000, kMs = 1'000'000;

Nanos ns(double v) {
  return static_cast<Nanos>(std::llround(v));
}

// Portable, seeded randomness: the same seed gives the same run on every platform (the
// standard distributions are implementation-defined, the engine is not).
class Rng {
public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}
  double uniform() { return (engine_() >> 11) * 0x1.0p-53; } // [0, 1)
  double exponential(double rate) { return -std::log1p(-uniform()) / rate; }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(uniform() * n); }

private:
  std::mt19937_64 engine_;
};

// A FIFO server shared by several flows (a Dom0 CPU, a vhost worker, a NIC): a packet that
// reaches it while it is busy waits. Reservations are made in send order, which is time order
// for each flow and close to it across flows.
struct Stage {
  Nanos free_at = 0;
  Nanos busy = 0;
  Nanos serve(Nanos arrive, Nanos service) {
    const Nanos start = std::max(arrive, free_at);
    free_at = start + service;
    busy += service;
    return free_at;
  }
};

// What travels in every frame before the application's bytes: which application message this
// piece belongs to, and when the application started sending it.
struct FrameMeta {
  std::uint64_t message = 0;
  std::uint32_t piece = 0, pieces = 1;
  Nanos created = 0;
};
constexpr std::size_t kMetaBytes = sizeof(FrameMeta);
static_assert(kMetaBytes == 24);

enum class Proto { tcp, udp };

struct Percentiles {
  std::vector<double> samples; // microseconds
  bool sorted = false;
  double at(double p) {
    if (samples.empty()) return 0;
    if (!sorted) std::sort(samples.begin(), samples.end());
    sorted = true;
    const double rank = p / 100.0 * static_cast<double>(samples.size() - 1);
    const auto lo = static_cast<std::size_t>(rank);
    const std::size_t hi = std::min(lo + 1, samples.size() - 1);
    return samples[lo] + (samples[hi] - samples[lo]) * (rank - static_cast<double>(lo));
  }
};

struct Pipe;

// A doorbell that schedules the woken endpoint's next step instead of waking a thread.
class SimDoorbell final : public Doorbell {
public:
  std::function<void(Wake)> on_ring;
  std::uint64_t rings = 0;
  void ring(Wake reason) override {
    ++rings;
    if (on_ring) on_ring(reason);
  }
  WaitResult wait(Wake, Nanos) override { return WaitResult::timed_out; } // never blocks
};

// One local path instance: a real channel in real (heap) memory between two VMs.
struct Generation {
  std::uint64_t epoch = 0;
  std::uint32_t ring_bytes = 0;
  std::byte* memory = nullptr;
  std::size_t memory_bytes = 0;
  SimDoorbell tx_bell, rx_bell;
  std::unique_ptr<Channel> tx, rx;
  std::unique_ptr<ChannelPath> tx_path, rx_path;
  bool broken = false;
  bool released = false;
  ~Generation() {
    rx_path.reset();
    tx_path.reset();
    rx.reset();
    tx.reset();
    ::operator delete (memory, std::align_val_t{4096});
  }
};

// The remote path as state: frames with the time they reach the receiver's socket.
class SimRemotePath final : public FramePath {
public:
  struct Frame {
    std::vector<std::byte> bytes;
    Nanos arrival;
  };
  std::function<Nanos(std::size_t frame_bytes)> arrival_of; // set by the pipe
  std::function<void(Nanos arrival)> on_enqueue;
  Clock* clock = nullptr;
  std::deque<Frame> frames;
  std::uint64_t in_flight_bytes = 0; // sent, not yet read by the receiver (the TCP window)

  Errc send(std::span<const std::byte> head, std::span<const std::byte> body, Nanos) override {
    Frame f;
    f.bytes.resize(head.size() + body.size());
    if (!head.empty()) std::memcpy(f.bytes.data(), head.data(), head.size());
    if (!body.empty()) std::memcpy(f.bytes.data() + head.size(), body.data(), body.size());
    // In order: a later frame never overtakes an earlier one on one path.
    f.arrival = std::max(arrival_of(f.bytes.size()), frames.empty() ? 0 : frames.back().arrival);
    in_flight_bytes += f.bytes.size();
    const Nanos arrival = f.arrival;
    frames.push_back(std::move(f));
    if (on_enqueue) on_enqueue(arrival);
    return Errc::ok;
  }
  Errc recv(std::span<std::byte> head, std::span<std::byte> body, std::size_t& length,
            Nanos) override {
    if (frames.empty() || frames.front().arrival > clock->now()) return Errc::would_block;
    Frame& f = frames.front();
    length = f.bytes.size();
    if (length > head.size() + body.size()) return Errc::buffer_too_small;
    const std::size_t h = std::min(head.size(), length);
    std::memcpy(head.data(), f.bytes.data(), h);
    if (length > h) std::memcpy(body.data(), f.bytes.data() + h, length - h);
    in_flight_bytes -= length;
    frames.pop_front();
    return Errc::ok;
  }
  std::size_t max_frame() const override { return 64u << 20; }
};

// Per-workload figures.
struct WorkloadStats {
  std::uint64_t messages = 0, bytes = 0; // delivered within the measured interval
  std::uint64_t transactions = 0;        // rr
  Percentiles latency;                   // stream: one-way; rr: round trip (us)
};

// One direction of one workload: a LinkSender in VM `from`, a LinkReceiver in VM `to`.
struct Pipe {
  VmId from = 0, to = 0;
  Proto proto = Proto::tcp;
  SimRemotePath remote;
  std::vector<std::unique_ptr<Generation>> generations;
  Generation* tx_gen = nullptr; // the sender's current local instance
  Generation* rx_gen = nullptr; // the receiver's
  std::unique_ptr<LinkSender> sender;
  std::unique_ptr<LinkReceiver> receiver;
  bool ever_local = false, local_forbidden = false;
  bool existed = false, gone = false, retry_pending = false; // both VMs are up / one stopped

  // Sender state.
  struct Outgoing {
    std::uint64_t id;
    std::size_t bytes;
    Nanos created;
    std::uint32_t next_piece = 0, pieces = 1;
  };
  std::deque<Outgoing> outbox;
  bool tx_busy = false;
  bool tx_waiting = false; // for ring space or the remote window
  bool flush_pending = false;
  Nanos send_offset = 0;        // the current send's CPU time: data is visible this much later
  std::function<void()> refill; // stream workloads: more to send
  // Receiver state.
  enum class RxState { idle, busy, polling, spinning, sleeping } rx_state = RxState::idle;
  bool rx_rested = false; // it slept: the next message pays for the interrupt
  std::function<void(const FrameMeta&, std::size_t bytes)> on_message; // whole message read
  std::vector<std::byte> rx_buffer, tx_buffer;
  FrameMeta rx_meta; // the frame being processed (state of the busy receiver)
  std::size_t rx_frame = 0;
  bool rx_last = false;
  std::uint64_t rx_spin_token = 0;
};

} // namespace

// ---------------------------------------------------------------------------------------------

class World {
public:
  explicit World(const Scenario& s);
  RunResult run();

private:
  struct VmInfo {
    VmId id;
    std::string name;
  };

  VmId vm_id(const std::string& name) const { return ids_.at(name); }
  bool trusted(VmId a, VmId b) const;
  std::uint32_t pieces_for(std::size_t bytes) const;

  // Cost models (docs/costs.md).
  Nanos local_send_cost(const Pipe& p, std::size_t frame, bool message_ends) const;
  Nanos local_recv_cost(const Pipe& p, std::size_t frame, bool message_ends) const;
  Nanos remote_send_cost(const Pipe& p, std::size_t frame) const;
  Nanos remote_recv_cost(const Pipe& p, std::size_t frame) const;
  Nanos remote_arrival(Pipe& p, std::size_t frame, Nanos leaves);
  double packets(std::size_t bytes) const {
    return std::max(1.0, std::ceil(static_cast<double>(bytes) / costs_.mss_bytes));
  }
  // Packets on the hypervisor path: TCP is segmented by the (virtual) NIC where it offers TSO.
  double nic_packets(const Pipe& p, std::size_t bytes) const;
  // What one received data record costs in interrupts, and (TCP below IP) what its share of
  // the returning ACK costs each side: the notification policy decides how many of them ring.
  double interrupts_per_record() const;

  void build_pipe(Pipe& p, VmId from, VmId to, Proto proto);
  LocalPath open_local(Pipe& p, bool renew);
  void release_local(Pipe& p);
  void break_channels_of(VmId vm, HostId left);

  // The endpoint state machines.
  void sender_step(Pipe& p);
  void sender_wake(Pipe& p, Nanos delay);
  void receiver_step(Pipe& p);
  void receiver_wake(Pipe& p, Nanos delay, bool by_doorbell);
  void schedule_flush(Pipe& p);

  void setup_workloads();
  void setup_events();
  void rebalance_pools();
  void record_operation(VmId self, VmId peer, LinkOperation op, Errc outcome, std::uint64_t bytes);
  bool measured(Nanos t) const { return t >= warmup_ && t <= end_; }
  RunResult collect(double wall_s);

  Scenario s_;
  CostModel costs_;
  Model model_;
  Rng rng_;
  NotifyPolicy policy_;
  RacePolicy race_;
  std::unique_ptr<MembershipSource> source_;
  GroupRegistrationSource* group_ = nullptr;
  std::unique_ptr<RaceWindows> windows_;
  RaceLedger ledger_;
  std::vector<VmInfo> vms_;
  std::unordered_map<std::string, VmId> ids_;
  std::vector<Stage> host_stage_; // Dom0 / vhost per host
  std::vector<Stage> nic_stage_;  // physical NIC per host
  std::vector<std::unique_ptr<SharedPool>> pools_;
  std::unordered_map<PairId, int> pool_refs_;
  std::vector<std::unique_ptr<Pipe>> pipes_;
  std::vector<WorkloadStats> wstats_;
  std::vector<std::pair<Pipe*, Pipe*>> workload_pipes_;
  Nanos warmup_ = 0, end_ = 0;
  std::uint64_t next_message_ = 1;

  // Totals.
  std::uint64_t data_rings_ = 0, space_rings_ = 0, doorbell_wakeups_ = 0, sleeps_ = 0;
  std::uint64_t sends_ = 0, sends_in_window_ = 0, trust_refusals_ = 0, pool_refusals_ = 0;
  std::uint64_t pending_bytes_ = 0, recovered_bytes_ = 0, channels_opened_ = 0;
  std::uint64_t link_probes_ = 0, udp_dropped_ = 0;
  double pool_util_sum_ = 0;
  std::uint64_t pool_util_samples_ = 0;
};

World::World(const Scenario& s)
    : s_(s), model_([&] {
        PlatformSpec spec;
        spec.hosts = s.platform.hosts;
        spec.link_bandwidth = s.platform.link_gbps * 1e9 / 8;
        spec.link_latency = s.platform.link_latency_us * 1e-6;
        spec.migration_speed = s.platform.migration_gbps * 1e9 / 8;
        return spec;
      }()),
      rng_(s.seed) {
  costs_.apply(s.costs);
  policy_ = s.channel.notify;
  race_ = s.membership.race;
  warmup_ = ns(s.warmup_s * 1e9);
  end_ = ns(s.duration_s * 1e9);
  host_stage_.resize(s.platform.hosts);
  nic_stage_.resize(s.platform.hosts);
  if (s.pool.enabled) {
    PoolConfig pc;
    pc.pool_bytes = std::uint64_t(s.pool.pool_mib) << 20;
    pc.chunk_bytes = s.pool.chunk_kib << 10;
    pc.policy = s.pool.allocation;
    pc.max_pairs = s.pool.max_pairs;
    for (std::size_t h = 0; h < s.platform.hosts; ++h) {
      pools_.push_back(std::make_unique<SharedPool>(pc));
    }
  }
}

bool World::trusted(VmId a, VmId b) const {
  if (s_.channel.trust != Trust::list) return true;
  for (const auto& [x, y] : s_.channel.trusted) {
    const VmId i = ids_.count(x) ? ids_.at(x) : 0, j = ids_.count(y) ? ids_.at(y) : 0;
    if ((i == a && j == b) || (i == b && j == a)) return true;
  }
  return false;
}

std::uint32_t World::pieces_for(std::size_t bytes) const {
  // A layer-3 channel (below IP) carries IP packets: a message is cut into segments. Layers 1
  // (library) and 2 (socket) carry it whole.
  if (s_.channel.layer != 3) return 1;
  return static_cast<std::uint32_t>(packets(bytes));
}

double World::nic_packets(const Pipe& p, std::size_t bytes) const {
  const bool tso = p.proto == Proto::tcp && (s_.platform.hypervisor == Hypervisor::xen ||
                                             s_.platform.guest_nic == GuestNic::virtio);
  const double unit = tso ? std::max(costs_.gso_bytes, costs_.mss_bytes) : costs_.mss_bytes;
  return std::max(1.0, std::ceil(static_cast<double>(bytes) / unit));
}

double World::interrupts_per_record() const {
  switch (policy_) {
  case NotifyPolicy::per_packet:
    return 1.0; // every record raises an interrupt, busy receiver or not (survey 3.3.4)
  case NotifyPolicy::atw:
    return 1.0 / std::max<std::uint32_t>(s_.channel.atw_batch, 1);
  default:
    return 0.0; // only a sleeper is woken (counted when it happens)
  }
}

// ---------------------------------------------------------------------------------------------
// Cost models. The socket call is a per-message cost: `message_ends` says whether this frame
// pays it (the first piece of a message when sending, the last when receiving). Per-byte and
// per-packet costs are paid by every frame.

Nanos World::local_send_cost(const Pipe& p, std::size_t frame, bool message_ends) const {
  const auto& c = costs_;
  double t = c.shm_per_record_ns + static_cast<double>(frame) * c.shm_copy_ns_per_byte;
  if (s_.channel.layer >= 2 && message_ends) t += c.syscall_ns; // a socket below it
  if (s_.channel.layer == 3) {
    t += p.proto == Proto::tcp ? c.tcp_per_packet_ns : c.udp_per_packet_ns;
    t += static_cast<double>(frame) * c.copy_ns_per_byte; // the socket copy
    if (p.proto == Proto::tcp) { // an ACK per two segments comes back through the channel
      t += 0.5 *
           (c.shm_softirq_per_packet_ns + c.tcp_per_packet_ns + interrupts_per_record() * c.irq_ns);
    }
  }
  return ns(t);
}

Nanos World::local_recv_cost(const Pipe& p, std::size_t frame, bool message_ends) const {
  const auto& c = costs_;
  double t = c.shm_per_record_ns + static_cast<double>(frame) * c.shm_copy_ns_per_byte;
  if (s_.channel.layer >= 2 && message_ends) t += c.syscall_ns;
  if (s_.channel.layer == 3) {
    t += c.shm_softirq_per_packet_ns;
    t += p.proto == Proto::tcp ? c.tcp_per_packet_ns : c.udp_per_packet_ns;
    t += static_cast<double>(frame) * c.copy_ns_per_byte; // the socket copy
    if (p.proto == Proto::tcp) {                          // sending that ACK back
      t += 0.5 * (c.tcp_per_packet_ns + c.shm_per_record_ns +
                  interrupts_per_record() * c.shm_doorbell_ns);
    }
  }
  t += interrupts_per_record() * c.irq_ns;
  return ns(t);
}

Nanos World::remote_send_cost(const Pipe& p, std::size_t frame) const {
  const auto& c = costs_;
  const double k = nic_packets(p, frame);
  double front = 0, notify = 0;
  if (s_.platform.hypervisor == Hypervisor::xen) {
    front = c.xen_netfront_per_packet_ns;
    notify = c.xen_event_channel_ns;
  } else if (s_.platform.guest_nic == GuestNic::emulated) {
    front = c.kvm_emulated_per_packet_ns;
    notify = 0; // its exits are in the per-packet cost
  } else {
    front = c.kvm_virtio_per_packet_ns;
    notify = c.kvm_exit_ns;
  }
  const double stack = p.proto == Proto::tcp ? c.tcp_per_packet_ns : c.udp_per_packet_ns;
  return ns(c.syscall_ns + static_cast<double>(frame) * c.copy_ns_per_byte + k * (stack + front) +
            notify);
}

Nanos World::remote_recv_cost(const Pipe& p, std::size_t frame) const {
  const auto& c = costs_;
  const double k = nic_packets(p, frame);
  const double front = s_.platform.hypervisor == Hypervisor::xen     ? c.xen_netfront_per_packet_ns
                       : s_.platform.guest_nic == GuestNic::emulated ? c.kvm_emulated_per_packet_ns
                                                                     : c.kvm_virtio_per_packet_ns;
  const double stack = p.proto == Proto::tcp ? c.tcp_per_packet_ns : c.udp_per_packet_ns;
  return ns(c.syscall_ns + static_cast<double>(frame) * c.copy_ns_per_byte + k * (stack + front));
}

// When a frame that leaves the sender's VM at `leaves` reaches the receiver's socket: through
// the host's Dom0 (or vhost worker), and between machines through both NICs and the wire.
Nanos World::remote_arrival(Pipe& p, std::size_t frame, Nanos leaves) {
  const auto& c = costs_;
  const double k = nic_packets(p, frame);
  const double bytes = static_cast<double>(frame);
  const Topology& topo = model_.topology();
  if (!topo.has_vm(p.to) || !topo.has_vm(p.from)) return leaves; // nobody will read it
  const HostId a = topo.host_of(p.from), b = topo.host_of(p.to);
  const bool xen = s_.platform.hypervisor == Hypervisor::xen;
  const double per_packet = xen ? c.xen_dom0_per_packet_ns : c.kvm_vhost_per_packet_ns;
  const double copy =
      xen ? c.xen_grant_copy_ns_per_byte * c.xen_grant_copies : c.kvm_host_copy_ns_per_byte;
  const double delay = xen ? c.xen_dom0_latency_ns : c.kvm_host_latency_ns;
  if (a == b) {
    const Nanos out = host_stage_[a].serve(leaves + ns(delay), ns(k * per_packet + bytes * copy));
    return out + ns(c.wakeup_latency_ns);
  }
  // Between hosts each end does half the copying, and the wire carries headers too.
  Nanos t = host_stage_[a].serve(leaves + ns(delay), ns(k * per_packet + bytes * copy / 2));
  const double wire = (bytes + k * 66) / (s_.platform.link_gbps * 1e9 / 8) * 1e9;
  t = nic_stage_[a].serve(t, ns(k * c.nic_per_packet_ns + wire));
  t += ns(s_.platform.link_latency_us * 1e3);
  t = nic_stage_[b].serve(t, ns(k * c.nic_per_packet_ns));
  t = host_stage_[b].serve(t + ns(delay), ns(k * per_packet + bytes * copy / 2));
  return t + ns(c.wakeup_latency_ns);
}

// ---------------------------------------------------------------------------------------------
// Links

void World::build_pipe(Pipe& p, VmId from, VmId to, Proto proto) {
  p.from = from;
  p.to = to;
  p.proto = proto;
  p.remote.clock = &model_.clock();
  p.remote.arrival_of = [this, &p](std::size_t frame) {
    return remote_arrival(p, frame, model_.now_ns() + p.send_offset);
  };
  p.remote.on_enqueue = [this, &p](Nanos arrival) {
    model_.at(arrival, [this, &p] { receiver_wake(p, 0, false); });
  };
  // The channel is only for VMs co-resident at start when the system cannot follow migration.
  const Topology& topo = model_.topology();
  const bool both_exist = topo.has_vm(from) && topo.has_vm(to);
  p.local_forbidden = !s_.channel.enabled || !trusted(from, to) ||
                      (!s_.channel.migration && !(both_exist && topo.co_resident(from, to)));
  if (!trusted(from, to)) ++trust_refusals_;

  LinkEnvironment tx;
  tx.remote = &p.remote;
  tx.open_local = [this, &p](Nanos) { return open_local(p, false); };
  tx.renew_local = [this, &p](Nanos) { return open_local(p, true); };
  tx.release_local = [this, &p] { release_local(p); };
  tx.believes_co_resident = [this, &p] { return source_->believes_co_resident(p.from, p.to); };
  tx.view_version = [this, &p] { return source_->view_version(p.from); };
  tx.probe_co_resident = [this, &p] {
    ++link_probes_;
    const Topology& t = model_.topology();
    return t.has_vm(p.from) && t.has_vm(p.to) && t.co_resident(p.from, p.to);
  };
  tx.on_operation = [this, &p](LinkOperation op, Errc e, std::uint64_t bytes) {
    record_operation(p.from, p.to, op, e, bytes);
  };
  LinkEnvironment rx;
  rx.remote = &p.remote;
  rx.find_local = [&p](std::uint64_t epoch, Nanos) -> FramePath* {
    for (auto& g : p.generations) {
      if (g->epoch == epoch) {
        p.rx_gen = g.get();
        // Older instances can never be read again: free their memory once the sender let go.
        std::erase_if(p.generations, [&](const std::unique_ptr<Generation>& old) {
          return old->epoch < epoch && old->released && old.get() != p.tx_gen;
        });
        return p.rx_gen->rx_path.get();
      }
    }
    return nullptr;
  };
  rx.on_operation = [this, &p](LinkOperation op, Errc e, std::uint64_t bytes) {
    record_operation(p.to, p.from, op, e, bytes);
  };
  LinkConfig cfg;
  cfg.race = race_;
  cfg.stale_timeout = ns(s_.membership.stale_timeout_us * 1e3);
  p.sender = std::make_unique<LinkSender>(tx, cfg, model_.clock());
  p.receiver = std::make_unique<LinkReceiver>(rx, model_.clock());
}

LocalPath World::open_local(Pipe& p, bool renew) {
  const Topology& topo = model_.topology();
  // Shared memory exists only between VMs that really are on one host, whatever anyone
  // believes: an establishment against a stale view is deferred (Table IV, row 1).
  if (p.local_forbidden || !topo.has_vm(p.from) || !topo.has_vm(p.to) ||
      !topo.co_resident(p.from, p.to)) {
    return {};
  }
  if (!s_.channel.migration && p.ever_local && !renew) return {}; // never re-established
  std::uint32_t ring = s_.channel.ring_kib << 10;
  const HostId host = topo.host_of(p.from);
  const PairId pair = pair_id(p.from, p.to);
  if (!pools_.empty()) {
    SharedPool& pool = *pools_[host];
    if (!pool.has_pair(pair)) {
      if (!pool.add_pair(pair, model_.now_ns())) {
        ++pool_refusals_;
        return {};
      }
      if (pool.config().policy == PoolPolicy::proportional) {
        // A new pair starts with what is free, at most its fair share; the next rebalance
        // corrects it.
        pool.report_demand(pair, pool.config().chunk_bytes, model_.now_ns());
        (void)pool.rebalance(model_.now_ns());
      }
    }
    if (!renew) ++pool_refs_[pair];
    ring = static_cast<std::uint32_t>(std::min<std::uint64_t>(pool.ring_bytes(pair), 1u << 30));
    if (ring < 4096) return {}; // no room until the next rebalance
  }
  auto g = std::make_unique<Generation>();
  g->epoch = p.generations.empty() ? 1 : p.generations.back()->epoch + 1;
  g->ring_bytes = ring;
  g->memory_bytes = Channel::area_bytes(ring, ring);
  g->memory = static_cast<std::byte*>(::operator new (g->memory_bytes, std::align_val_t{4096}));
  std::memset(g->memory, 0, g->memory_bytes);
  ChannelConfig cc;
  cc.ring_bytes = ring;
  cc.notify.policy = policy_;
  cc.notify.atw_batch = s_.channel.atw_batch;
  cc.notify.atw_window = ns(s_.channel.atw_window_us * 1e3);
  cc.notify.spin_budget = ns(s_.channel.spin_budget_us * 1e3);
  cc.liveness.peer_timeout = kForever / 4; // the model tells channels when a peer leaves
  cc.liveness.heartbeat_period = kForever / 4;
  const SharedRegion region{g->memory, g->memory_bytes};
  Generation* gp = g.get();
  g->tx_bell.on_ring = [this, &p, gp](Wake) { // the sender rings: data for the receiver
    ++data_rings_;
    if (p.rx_gen == gp) receiver_wake(p, p.send_offset + ns(costs_.wakeup_latency_ns), true);
  };
  g->rx_bell.on_ring = [this, &p, gp](Wake) { // the receiver rings: space for the sender
    ++space_rings_;
    if (p.tx_gen == gp) sender_wake(p, ns(costs_.wakeup_latency_ns));
  };
  cc.platform_address = p.from;
  Opened tx = Channel::create(region, cc, g->tx_bell, model_.clock());
  cc.platform_address = p.to;
  Opened rx = Channel::attach(region, cc, g->rx_bell, model_.clock());
  if (!tx.channel || !rx.channel) {
    throw std::logic_error("sim: a local channel could not be set up: " + tx.detail + rx.detail);
  }
  g->tx = std::move(tx.channel);
  g->rx = std::move(rx.channel);
  g->tx_path = std::make_unique<ChannelPath>(*g->tx);
  g->rx_path = std::make_unique<ChannelPath>(*g->rx);
  p.tx_gen = gp;
  p.ever_local = true;
  ++channels_opened_;
  const std::uint64_t epoch = g->epoch;
  p.generations.push_back(std::move(g));
  return {gp->tx_path.get(), epoch};
}

void World::release_local(Pipe& p) {
  if (p.tx_gen == nullptr) return;
  p.tx_gen->released = true;
  p.tx_gen = nullptr;
  if (pools_.empty()) return;
  const PairId pair = pair_id(p.from, p.to);
  auto it = pool_refs_.find(pair);
  if (it == pool_refs_.end() || --it->second > 0) return;
  pool_refs_.erase(it);
  for (auto& pool : pools_) {
    if (pool->has_pair(pair)) pool->remove_pair(pair, model_.now_ns());
  }
}

// `vm` left host `left`: every channel between it and a VM there loses its memory. Records the
// peer wrote completely stay readable (the receiver drains them); sends fail from now on.
void World::break_channels_of(VmId vm, HostId left) {
  for (auto& pp : pipes_) {
    Pipe& p = *pp;
    if (p.from != vm && p.to != vm) continue;
    const VmId other = p.from == vm ? p.to : p.from;
    if (!model_.topology().has_vm(other) || model_.topology().host_of(other) != left) continue;
    bool any = false;
    for (auto& g : p.generations) {
      if (g->broken) continue;
      g->broken = any = true;
      pending_bytes_ += g->tx->unconsumed_outgoing();
      g->tx->mark_peer_dead("sim: the peer migrated away or shut down");
      g->rx->mark_peer_dead("sim: the peer migrated away or shut down");
    }
    if (any) {
      sender_wake(p, 0);
      receiver_wake(p, 0, false);
    }
  }
}

void World::record_operation(VmId self, VmId peer, LinkOperation op, Errc outcome,
                             std::uint64_t bytes) {
  ledger_.record(op, windows_->in_race_window(self, peer, model_.now_ns()), outcome, bytes);
}

// ---------------------------------------------------------------------------------------------
// Sender: one frame per step; the step's CPU time is the cost model's, after which the next
// step runs.

void World::sender_wake(Pipe& p, Nanos delay) {
  if (!p.tx_waiting) return;
  p.tx_waiting = false;
  model_.at(model_.now_ns() + delay, [this, &p] { sender_step(p); });
}

void World::schedule_flush(Pipe& p) {
  if (policy_ != NotifyPolicy::atw || p.flush_pending || p.tx_gen == nullptr) return;
  p.flush_pending = true;
  const Nanos window = std::max<Nanos>(ns(s_.channel.atw_window_us * 1e3), 1);
  model_.at(model_.now_ns() + window, [this, &p] {
    p.flush_pending = false;
    if (p.tx_gen != nullptr && !p.tx_gen->broken) {
      const std::uint64_t before = p.tx_gen->tx_bell.rings;
      p.tx_gen->tx->flush();
      if (p.tx_gen->tx_bell.rings == before && p.tx_gen->tx->unconsumed_outgoing() > 0) {
        schedule_flush(p); // the batch is younger than the window: look again later
      }
    }
  });
}

void World::sender_step(Pipe& p) {
  if (p.tx_busy || p.tx_waiting) return;
  const Topology& topo = model_.topology();
  if (!topo.has_vm(p.from) || !topo.has_vm(p.to)) {
    // Not created yet (look again in a millisecond), or shut down (the traffic ends).
    if (p.gone || (p.existed && model_.now_ns() > 0)) {
      p.gone = true;
      p.outbox.clear();
      return;
    }
    if (!p.retry_pending && model_.now_ns() < end_) {
      p.retry_pending = true;
      model_.at(model_.now_ns() + kMs, [this, &p] {
        p.retry_pending = false;
        sender_step(p);
      });
    }
    return;
  }
  p.existed = true;
  if (p.outbox.empty() && p.refill) p.refill();
  if (p.outbox.empty()) return;
  const Nanos now = model_.now_ns();
  Pipe::Outgoing& m = p.outbox.front();
  if (m.next_piece == 0) {
    // Cut into packets only where it will travel as packets: on a channel below IP. The
    // hypervisor path takes the whole send (its NIC model segments it).
    const bool local = !p.local_forbidden && (p.sender->path() == PathKind::local ||
                                              source_->believes_co_resident(p.from, p.to));
    m.pieces = local ? pieces_for(m.bytes) : 1;
  }
  const std::size_t whole = m.bytes;
  const std::size_t piece_bytes =
      m.pieces == 1 ? whole
                    : std::min<std::size_t>(static_cast<std::size_t>(costs_.mss_bytes),
                                            whole - m.next_piece *
                                                        static_cast<std::size_t>(costs_.mss_bytes));
  const std::size_t frame = std::max(piece_bytes, kMetaBytes);
  // Flow control before the step: ring space on the local path, the window on the remote one.
  constexpr std::size_t kLinkOverhead = 16 + 40; // the link header, and room for a path_end
  if (p.sender->path() == PathKind::local && p.tx_gen != nullptr && !p.tx_gen->broken &&
      frame + kLinkOverhead <= p.tx_gen->tx->max_message() &&
      !p.tx_gen->tx->can_send(frame + kLinkOverhead)) {
    if (p.tx_gen->tx->request_wake(Wake::space, frame + kLinkOverhead) == Errc::would_block) {
      p.tx_waiting = true;
      ++sleeps_;
      if (policy_ == NotifyPolicy::polling) { // nobody rings: the sender polls the index
        p.tx_waiting = false;
        model_.at(now + ns(costs_.shm_poll_detect_ns * 4), [this, &p] { sender_step(p); });
      }
      return;
    }
  }
  // UDP decides per datagram (all its fragments or none), TCP per segment.
  const std::size_t needs = p.proto == Proto::tcp ? frame : m.next_piece == 0 ? whole : 0;
  if (p.sender->path() == PathKind::remote && needs > 0 &&
      p.remote.in_flight_bytes + needs > static_cast<std::uint64_t>(costs_.socket_buffer_bytes) &&
      p.remote.in_flight_bytes > 0) {
    if (p.proto == Proto::tcp) {
      p.tx_waiting = true; // the receiver's reads open the window again
      return;
    }
    // UDP: the datagram finds the buffers full and is dropped (netperf's UDP_STREAM counts
    // what arrives); the sender still paid for the call.
    ++udp_dropped_;
    p.outbox.pop_front();
    p.tx_busy = true;
    model_.at(now + ns(costs_.syscall_ns), [this, &p] {
      p.tx_busy = false;
      sender_step(p);
    });
    return;
  }
  // The step itself: a real link send, timed by the cost model of the path it took.
  FrameMeta meta{m.id, m.next_piece, m.pieces, m.created};
  // A frame is its meta, then filler up to its size (in a buffer kept by the pipe).
  if (p.tx_buffer.size() < frame) p.tx_buffer.resize(frame);
  std::memcpy(p.tx_buffer.data(), &meta, kMetaBytes);
  const std::span<const std::byte> body(p.tx_buffer.data(), frame);
  const Nanos local_cost = local_send_cost(p, frame, m.next_piece == 0);
  const Nanos remote_cost = remote_send_cost(p, frame);
  const std::uint64_t probes_before = p.sender->stats().probes;
  const std::uint64_t fallbacks_before = p.sender->stats().fallbacks;
  const PathKind before = p.sender->path();
  // Where the data goes is only known inside send(); the doorbell and the remote path use the
  // offset of the path it most likely takes (fixed below for the one it took).
  p.send_offset = before == PathKind::local ? local_cost : remote_cost;
  const bool want_local = !p.local_forbidden && (p.sender->path() == PathKind::local ||
                                                 source_->believes_co_resident(p.from, p.to));
  if (want_local && before == PathKind::remote) p.send_offset = local_cost;
  Generation* gen = p.tx_gen;
  const std::uint64_t rings_before = gen ? gen->tx_bell.rings : 0;
  const Errc e = p.sender->send(body, 0);
  if (e != Errc::ok) {
    throw std::logic_error(fmt::format("sim: link send failed: {}", to_string(e)));
  }
  ++sends_;
  if (windows_->in_race_window(p.from, p.to, now)) ++sends_in_window_;
  const bool went_local = p.sender->stats().sent_local > 0 && p.sender->path() == PathKind::local &&
                          p.sender->stats().fallbacks == fallbacks_before;
  Nanos cost = went_local ? local_cost : remote_cost;
  if (p.sender->stats().fallbacks != fallbacks_before) cost += local_cost; // the failed try
  cost += ns(static_cast<double>(p.sender->stats().probes - probes_before) *
             s_.membership.probe_cost_us * 1e3);
  gen = p.tx_gen;
  if (gen != nullptr && went_local) {
    if (gen->tx_bell.rings != rings_before) cost += ns(costs_.shm_doorbell_ns);
    // A poller (or a spinner within its budget) sees the record without a ring.
    if (p.rx_gen == gen &&
        (p.rx_state == Pipe::RxState::polling || p.rx_state == Pipe::RxState::spinning)) {
      receiver_wake(p, local_cost + ns(costs_.shm_poll_detect_ns), false);
    }
    schedule_flush(p);
  }
  if (++m.next_piece >= m.pieces) p.outbox.pop_front();
  p.tx_busy = true;
  model_.at(now + std::max<Nanos>(cost, 1), [this, &p] {
    p.tx_busy = false;
    sender_step(p);
  });
}

// ---------------------------------------------------------------------------------------------
// Receiver: one frame per step.

void World::receiver_wake(Pipe& p, Nanos delay, bool by_doorbell) {
  model_.at(model_.now_ns() + delay, [this, &p, by_doorbell] {
    if (p.rx_state == Pipe::RxState::busy) return; // it looks again when it is done
    if (by_doorbell && p.rx_state == Pipe::RxState::sleeping) ++doorbell_wakeups_;
    receiver_step(p);
  });
}

void World::receiver_step(Pipe& p) {
  const Nanos now = model_.now_ns();
  std::size_t n = 0;
  const Errc e = p.receiver->recv(p.rx_buffer, n, 0);
  if (e == Errc::ok) {
    FrameMeta meta;
    std::memcpy(&meta, p.rx_buffer.data(), kMetaBytes);
    const bool local = p.receiver->path() == PathKind::local && p.rx_gen != nullptr;
    if (local && p.rx_gen->broken) recovered_bytes_ += n;
    const bool last = meta.piece + 1 >= meta.pieces;
    Nanos cost = local ? local_recv_cost(p, n, last) : remote_recv_cost(p, n);
    if (p.rx_rested) cost += ns(costs_.irq_ns);
    p.rx_rested = false;
    if (!local) {
      // The window opens: a sender waiting on it goes on (its ACK crosses the same path).
      sender_wake(p, ns(costs_.wakeup_latency_ns));
    } else if (policy_ == NotifyPolicy::polling) {
      sender_wake(p, ns(costs_.shm_poll_detect_ns)); // a polling sender sees the index move
    }
    p.rx_state = Pipe::RxState::busy;
    p.rx_meta = meta; // what the frame's processing delivers when it is done
    p.rx_frame = n;
    p.rx_last = last;
    model_.at(now + std::max<Nanos>(cost, 1), [this, &p] { // small capture: no allocation
      p.rx_state = Pipe::RxState::idle;
      if (p.rx_last && p.on_message) p.on_message(p.rx_meta, p.rx_frame);
      receiver_step(p);
    });
    return;
  }
  if (e == Errc::peer_closed) {
    p.rx_state = Pipe::RxState::idle;
    return;
  }
  // Nothing to read now. On the local path: poll, spin, or ask for a ring and sleep.
  Generation* g = p.receiver->path() == PathKind::local ? p.rx_gen : nullptr;
  if (g == nullptr || g->broken) {
    p.rx_state = Pipe::RxState::sleeping; // remote arrivals and breaks wake it
    p.rx_rested = true;
    return;
  }
  switch (policy_) {
  case NotifyPolicy::polling:
    p.rx_state = Pipe::RxState::polling;
    return;
  case NotifyPolicy::spin_then_block: {
    p.rx_state = Pipe::RxState::spinning;
    const std::uint64_t token = ++p.rx_spin_token;
    model_.at(now + ns(s_.channel.spin_budget_us * 1e3), [this, &p, g, token] {
      if (p.rx_state != Pipe::RxState::spinning || p.rx_spin_token != token) return;
      if (p.rx_gen != g || g->rx->request_wake(Wake::data) == Errc::ok) {
        receiver_step(p);
        return;
      }
      p.rx_state = Pipe::RxState::sleeping;
      p.rx_rested = true;
      ++sleeps_;
    });
    return;
  }
  default:
    if (g->rx->request_wake(Wake::data) == Errc::ok) { // it arrived meanwhile
      model_.at(now, [this, &p] { receiver_step(p); });
      p.rx_state = Pipe::RxState::idle;
      return;
    }
    p.rx_state = Pipe::RxState::sleeping;
    p.rx_rested = true;
    ++sleeps_;
  }
}

// ---------------------------------------------------------------------------------------------
// Set-up

void World::setup_workloads() {
  for (std::size_t i = 0; i < s_.workloads.size(); ++i) {
    const WorkloadConfig& w = s_.workloads[i];
    const bool rr = experiment::is_request_response(w.kind);
    const Proto proto = experiment::is_udp(w.kind) ? Proto::udp : Proto::tcp;
    const VmId a = vm_id(w.from), b = vm_id(w.to);
    const Nanos start = ns(w.start_s * 1e9);
    const Nanos stop = w.stop_s < 0 ? end_ : std::min(end_, ns(w.stop_s * 1e9));
    auto fwd = std::make_unique<Pipe>();
    build_pipe(*fwd, a, b, proto);
    Pipe* f = fwd.get();
    pipes_.push_back(std::move(fwd));
    Pipe* back = nullptr;
    if (rr) {
      auto bw = std::make_unique<Pipe>();
      build_pipe(*bw, b, a, proto);
      back = bw.get();
      pipes_.push_back(std::move(bw));
    }
    workload_pipes_.push_back({f, back});
    const std::size_t bytes = w.message_bytes;
    for (Pipe* p : {f, back}) { // a frame is at most a message (or its meta) plus a marker
      if (p != nullptr) p->rx_buffer.resize(std::max(bytes, kMetaBytes) + 64);
    }
    auto message = [this, bytes](Nanos created) { // cut into pieces when it starts (sender_step)
      return Pipe::Outgoing{next_message_++, bytes, created, 0, 1};
    };
    WorkloadStats* st = &wstats_[i];
    if (!rr) {
      if (w.rate_per_s > 0) { // offered load: evenly spaced, or Poisson arrivals
        const double rate = w.rate_per_s;
        const bool poisson = w.arrivals == Arrivals::poisson;
        auto tick = std::make_shared<std::function<void(Nanos)>>();
        *tick = [this, f, rate, poisson, stop, message, tick](Nanos t) {
          if (t > stop) return;
          f->outbox.push_back(message(t));
          sender_step(*f);
          const Nanos gap =
              std::max<Nanos>(ns(1e9 * (poisson ? rng_.exponential(rate) : 1.0 / rate)), 1);
          model_.at(t + gap, [tick, t, gap] { (*tick)(t + gap); });
        };
        model_.at(start, [tick, start] { (*tick)(start); });
      } else { // as fast as the sender can
        f->refill = [this, f, stop, message] {
          if (model_.now_ns() < stop) f->outbox.push_back(message(model_.now_ns()));
        };
        model_.at(start, [this, f] { sender_step(*f); });
      }
      f->on_message = [this, st, bytes](const FrameMeta& meta, std::size_t) {
        const Nanos now = model_.now_ns();
        if (!measured(meta.created) || !measured(now)) return;
        ++st->messages;
        st->bytes += bytes;
        st->latency.samples.push_back(static_cast<double>(now - meta.created) / 1e3);
      };
    } else {
      // Request/response: the client sends a request, the server answers it, the client sends
      // the next one when the answer is complete.
      auto next_request = [this, f, stop, message] {
        if (model_.now_ns() >= stop) return;
        f->outbox.push_back(message(model_.now_ns()));
        sender_step(*f);
      };
      model_.at(start, next_request);
      f->on_message = [this, back, message](const FrameMeta& meta, std::size_t) {
        back->outbox.push_back(message(meta.created)); // the response carries the request's time
        sender_step(*back);
      };
      back->on_message = [this, st, bytes, next_request](const FrameMeta& meta, std::size_t) {
        const Nanos now = model_.now_ns();
        if (measured(meta.created) && measured(now)) {
          ++st->transactions;
          ++st->messages;
          st->bytes += 2 * bytes;
          st->latency.samples.push_back(static_cast<double>(now - meta.created) / 1e3);
        }
        next_request();
      };
    }
  }
}

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
  auto address = [](VmId id) {
    return VmAddress{id, fmt::format("10.{}.{}.{}", (id >> 16) & 255, (id >> 8) & 255, id & 255),
                     ""};
  };
  // The VMs present at start exist before anything runs (views start from the truth).
  for (const VmConfig& v : s_.vms) {
    model_.place_vm(ids_[v.name], address(ids_[v.name]), static_cast<HostId>(v.host),
                    v.ram_mib << 20);
  }
  // Membership.
  MembershipParams mp;
  mp.period = std::max<Nanos>(ns(s_.membership.period_ms * 1e6), 1);
  mp.phase = ns(s_.membership.phase_ms * 1e6);
  mp.propagation_delay = ns(s_.membership.propagation_delay_us * 1e3);
  mp.period_min = ns(s_.membership.period_min_ms * 1e6);
  mp.period_max = ns(s_.membership.period_max_ms * 1e6);
  mp.watch_delay = ns(s_.membership.watch_delay_us * 1e3);
  if (s_.membership.detection == Detection::static_list) {
    std::map<std::size_t, std::string> lines;
    for (const VmConfig& v : s_.vms) lines[v.host] += " " + std::to_string(ids_[v.name]);
    for (const auto& [h, l] : lines) mp.static_list_text += fmt::format("host {}:{}\n", h, l);
  }
  source_ = make_membership_source(experiment::to_string(s_.membership.detection), topo, mp);
  group_ = dynamic_cast<GroupRegistrationSource*>(source_.get());
  if (group_ != nullptr) {
    for (const VmConfig& v : s_.vms) group_->register_vm(ids_[v.name], 1, 0);
  }
  windows_ = std::make_unique<RaceWindows>(*source_);
  model_.attach(*source_);
  source_->subscribe([this](VmId observer, Nanos) {
    // A view change reaches the VM's links at once (inside a synchronous update: before the
    // move completes, while the old channel still works).
    for (auto& pp : pipes_) {
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
  for (const GeneratorConfig& g : s_.generators) {
    std::vector<VmId> candidates;
    for (const auto& name : g.vms) candidates.push_back(ids_.at(name));
    if (candidates.empty()) {
      for (const auto& v : vms_) candidates.push_back(v.id);
    }
    const double stop = g.stop_s < 0 ? s_.duration_s : std::min(g.stop_s, s_.duration_s);
    for (double t = g.start_s + rng_.exponential(g.rate_per_s); t < stop;
         t += rng_.exponential(g.rate_per_s)) {
      const VmId vm = candidates[rng_.below(candidates.size())];
      if (g.kind == EventKind::migrate) {
        // Another host, uniformly; the model skips it if the VM is moving at that time.
        const std::size_t other = rng_.below(s_.platform.hosts - 1);
        model_.at_sync(ns(t * 1e9), [this, vm, other, t] {
          if (!model_.topology().has_vm(vm) || model_.migrating(vm)) return;
          const HostId here = model_.topology().host_of(vm);
          const HostId to = static_cast<HostId>(other >= here ? other + 1 : other);
          model_.migrate_at(t, vm, to);
        });
      } else if (g.kind == EventKind::shutdown) {
        model_.shutdown_at(t, vm);
      } else {
        model_.create_vm_at(t, vm, address(vm), static_cast<HostId>(rng_.below(s_.platform.hosts)),
                            ram.count(vm) ? ram[vm] << 20 : 1u << 30);
      }
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

void World::rebalance_pools() {
  const Nanos now = model_.now_ns();
  // Demand: the bytes each pair's local instance holds unread (its backlog), plus a chunk.
  std::unordered_map<PairId, std::uint64_t> demand;
  for (auto& pp : pipes_) {
    if (pp->tx_gen == nullptr || pp->tx_gen->broken) continue;
    demand[pair_id(pp->from, pp->to)] +=
        pp->tx_gen->tx->unconsumed_outgoing() + pp->tx_gen->ring_bytes / 2;
  }
  for (std::size_t h = 0; h < pools_.size(); ++h) {
    SharedPool& pool = *pools_[h];
    for (const auto& [pair, bytes] : demand) {
      if (pool.has_pair(pair)) pool.report_demand(pair, bytes, now);
    }
    for (const PoolResize& r : pool.rebalance(now)) {
      for (auto& pp : pipes_) { // MemPipe: the pipe inflates or deflates to its new size
        if (pair_id(pp->from, pp->to) != r.pair || pp->tx_gen == nullptr || pp->tx_busy) continue;
        if (pp->tx_gen->broken || !pp->tx_gen->tx->can_send(64)) continue;
        (void)pp->sender->renew_local(0);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------

RunResult World::run() {
  const auto wall0 = std::chrono::steady_clock::now();
  wstats_.resize(s_.workloads.size());
  setup_events();
  setup_workloads();
  model_.stop_at(s_.duration_s);
  model_.run();
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return collect(wall);
}

RunResult World::collect(double wall_s) {
  RunResult r;
  auto add = [&](std::string name, double v) { r.metrics.push_back({std::move(name), v}); };
  const double span = static_cast<double>(end_ - warmup_) / 1e9;
  double stream_mbps = 0, rr_tps = 0;
  std::string summary = fmt::format("{}: {:.3f} s simulated, {} hosts, {} VMs, seed {}\n", s_.name,
                                    s_.duration_s, s_.platform.hosts, s_.vms.size(), s_.seed);
  const std::string timer = s_.membership.detection == Detection::periodic ||
                                    s_.membership.detection == Detection::adaptive
                                ? fmt::format("T {} ms", s_.membership.period_ms)
                            : s_.membership.detection == Detection::watch
                                ? fmt::format("delay {} us", s_.membership.watch_delay_us)
                                : std::string("no timer");
  summary += fmt::format(
      "  {} hosts; channel {}: layer {}, {}, {} KiB rings{}; membership {} ({}), "
      "race {}\n",
      experiment::to_string(s_.platform.hypervisor), s_.channel.enabled ? "on" : "off",
      s_.channel.layer, to_string(s_.channel.notify), s_.channel.ring_kib,
      s_.pool.enabled ? ", pool " + std::string(to_string(s_.pool.allocation)) : "",
      experiment::to_string(s_.membership.detection), timer, to_string(s_.membership.race));
  for (std::size_t i = 0; i < s_.workloads.size(); ++i) {
    const WorkloadConfig& w = s_.workloads[i];
    WorkloadStats& st = wstats_[i];
    const std::string pre = fmt::format("w{}_", i);
    const bool rr = experiment::is_request_response(w.kind);
    const double mbps = static_cast<double>(st.bytes) * 8 / span / 1e6;
    if (rr) {
      const double tps = static_cast<double>(st.transactions) / span;
      rr_tps += tps;
      add(pre + "transactions_per_s", tps);
    } else {
      stream_mbps += mbps;
      add(pre + "mbps", mbps);
      add(pre + "messages_per_s", static_cast<double>(st.messages) / span);
    }
    std::string lat;
    for (double pct : s_.latency_percentiles) {
      const double v = st.latency.at(pct);
      add(pre + fmt::format("{}_p{}_us", rr ? "rtt" : "latency", pct), v);
      lat += fmt::format(" p{} {:.1f}", pct, v);
    }
    const Pipe& f = *workload_pipes_[i].first;
    const LinkStats& ls = f.sender->stats();
    const double local_share = ls.messages_sent ? static_cast<double>(ls.sent_local) /
                                                      static_cast<double>(ls.messages_sent)
                                                : 0;
    add(pre + "local_share", local_share);
    summary += fmt::format(
        "  {:<10} {:>6} -> {:<6} {:>7} B  {}{}  local {:.0f}%\n", experiment::to_string(w.kind),
        w.from, w.to, w.message_bytes,
        rr ? fmt::format("{:10.0f} trans/s", static_cast<double>(st.transactions) / span)
           : fmt::format("{:10.1f} Mb/s   ", mbps),
        fmt::format("  {} us:{}", rr ? "rtt" : "latency", lat), local_share * 100);
  }
  add("stream_mbps", stream_mbps);
  add("rr_transactions_per_s", rr_tps);
  LinkStats total;
  for (auto& pp : pipes_) {
    const LinkStats& a = pp->sender->stats();
    const LinkStats& b = pp->receiver->stats();
    total.sent_local += a.sent_local;
    total.sent_remote += a.sent_remote;
    total.switches_to_local += a.switches_to_local;
    total.switches_to_remote += a.switches_to_remote;
    total.fallbacks += a.fallbacks;
    total.deferred += a.deferred;
    total.renewals += a.renewals;
    total.lost_messages += a.lost_messages + b.lost_messages;
    total.lost_bytes += a.lost_bytes + b.lost_bytes;
    total.duplicates += b.duplicates;
    total.drained_after_break += b.drained_after_break;
  }
  add("notifications", static_cast<double>(data_rings_ + space_rings_));
  add("data_notifications", static_cast<double>(data_rings_));
  add("space_notifications", static_cast<double>(space_rings_));
  add("wakeups", static_cast<double>(doorbell_wakeups_));
  add("sleeps", static_cast<double>(sleeps_));
  add("membership_probes", static_cast<double>(source_->probes()));
  add("link_probes", static_cast<double>(link_probes_));
  add("sends", static_cast<double>(sends_));
  add("sends_in_race_window", static_cast<double>(sends_in_window_));
  add("race_exposure",
      sends_ ? static_cast<double>(sends_in_window_) / static_cast<double>(sends_) : 0);
  static constexpr const char* rows[] = {"establishment", "pending_data", "teardown"};
  static constexpr const char* cols[] = {"migration_in", "creation", "migration_out", "shutdown"};
  const RaceCell all = ledger_.total();
  add("race_operations", static_cast<double>(all.operations));
  add("race_errors", static_cast<double>(all.errors));
  add("race_deferred", static_cast<double>(all.deferred));
  for (int op = 0; op < 3; ++op) {
    for (int k = 0; k < 4; ++k) {
      const RaceCell& c = ledger_.cell(static_cast<LinkOperation>(op), static_cast<ChangeKind>(k));
      add(fmt::format("race_{}_{}", rows[op], cols[k]), static_cast<double>(c.operations));
    }
  }
  add("frames_local", static_cast<double>(total.sent_local));
  add("frames_remote", static_cast<double>(total.sent_remote));
  add("switches_to_local", static_cast<double>(total.switches_to_local));
  add("switches_to_remote", static_cast<double>(total.switches_to_remote));
  add("fallbacks", static_cast<double>(total.fallbacks));
  add("deferred_establishments", static_cast<double>(total.deferred));
  add("channels_opened", static_cast<double>(channels_opened_));
  add("pending_bytes", static_cast<double>(pending_bytes_));
  add("recovered_bytes", static_cast<double>(recovered_bytes_));
  add("lost_messages", static_cast<double>(total.lost_messages));
  add("lost_bytes", static_cast<double>(total.lost_bytes));
  add("udp_dropped", static_cast<double>(udp_dropped_));
  add("trust_refusals", static_cast<double>(trust_refusals_));
  add("pool_refusals", static_cast<double>(pool_refusals_));
  add("pool_renewals", static_cast<double>(total.renewals));
  add("pool_utilisation",
      pool_util_samples_ ? pool_util_sum_ / static_cast<double>(pool_util_samples_) : 0);
  double mig_s = 0;
  for (const auto& m : model_.migrations()) mig_s += m.end - m.start;
  add("migrations", static_cast<double>(model_.migrations().size()));
  add("migration_s_mean",
      model_.migrations().empty() ? 0 : mig_s / static_cast<double>(model_.migrations().size()));
  r.events = model_.events();
  r.wall_s = wall_s;
  summary += fmt::format(
      "  notifications {} (data {}, space {}), wakeups {}, membership probes {}\n"
      "  migrations {} (mean {:.3f} s), switches {} to local / {} to remote, fallbacks {}\n"
      "  race windows: {} operations ({} errors), {:.2f}% of sends; pending {} B, recovered {} "
      "B, lost {} B\n"
      "  {} events in {:.2f} s wall ({:.2f} M events/s)\n",
      data_rings_ + space_rings_, data_rings_, space_rings_, doorbell_wakeups_, source_->probes(),
      model_.migrations().size(),
      model_.migrations().empty() ? 0 : mig_s / static_cast<double>(model_.migrations().size()),
      total.switches_to_local, total.switches_to_remote, total.fallbacks, all.operations,
      all.errors,
      sends_ ? 100.0 * static_cast<double>(sends_in_window_) / static_cast<double>(sends_) : 0,
      pending_bytes_, recovered_bytes_, total.lost_bytes, model_.events(), wall_s,
      static_cast<double>(model_.events()) / std::max(wall_s, 1e-9) / 1e6);
  r.summary = summary;
  // metric_names() is the schema other backends write: it must be exactly this list.
  const std::vector<std::string> schema = experiment::metric_names(s_);
  bool same = schema.size() == r.metrics.size();
  for (std::size_t i = 0; same && i < schema.size(); ++i) same = schema[i] == r.metrics[i].name;
  if (!same) throw std::logic_error("metric_names() and World::collect() disagree");
  return r;
}

namespace {
bool g_ran = false;
}

RunResult run_scenario(const Scenario& scenario) {
  if (const auto issues = experiment::validate(scenario); !issues.empty())
    throw ScenarioError(issues);
  if (g_ran) {
    throw std::logic_error("run_scenario: this process already ran a point (one SimGrid engine "
                           "per process; run each point in its own process)");
  }
  g_ran = true;
  World world(scenario);
  return world.run();
}

} // namespace ivmc::sim
