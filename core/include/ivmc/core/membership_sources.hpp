// The membership policies of the survey (sections 3.4.1, 6.1, 6.3), each a MembershipSource
// over the ground truth (topology.hpp), and the race-window bookkeeping of Table IV.
//
//   StaticListSource         XWAY, IVC's initial list: views loaded once from a file
//   GroupRegistrationSource  IVC's magic id: co-resident if registered in one group from one host
//   PeriodicScanSource       XenLoop's Dom0 discovery, MemPipe: a scanner per host, period T
//   AdaptiveScanSource       periodic scan whose T follows the observed change rate (3.6.1)
//   EventWatchSource         XenVMC's vms[], MMNet: each event advertised after a delay d
//   SynchronousSource        prevention by synchronous update inside the migration transaction
//
// Driving a source. The platform applies a change to the Topology and passes the returned event
// to on_event() at once, before the next change (the source reads the topology to find who
// observes the change). Time-driven work (scans, advertisements) runs in run_due(now); each
// piece is stamped with the `now` it ran at, so a simulation calls run_due(next_due()) until
// next_due() passes the next event to get exact times, and a real platform's ticker calls it
// late and gets the real (late) times. Events at time t are reported before run_due(t).
//
// Records. For every change, one NotificationRecord per observing VM: the VMs on the host it
// left (migration_out / shutdown) and on the host it arrived at (migration_in / creation), plus
// the subject itself for a creation (kind creation: its view is initialised) and a migration
// (two records, migration_out and migration_in: its view of both hosts changes). Every source
// here notifies the records of one (observer, subject) pair in change order, which RaceWindows
// relies on.
//
// Single-threaded: the platform serialises every call; ViewChanged callbacks run inside the
// call that changed the view and must not call back into the source's mutators.
#pragma once

#include "ivmc/core/membership.hpp"
#include "ivmc/core/topology.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ivmc {

// ---------------------------------------------------------------------------------------------
// Shared machinery: per-VM views, their versions, subscribers, records, probe count. A base for
// the policies below, not a policy by itself.
class ViewKeepingSource : public MembershipSource {
public:
  bool believes_co_resident(VmId observer, VmId peer) const override;
  std::uint64_t view_version(VmId observer) const override;
  void subscribe(ViewChanged callback) override;
  const std::vector<NotificationRecord>& records() const override { return records_; }
  std::size_t record_base() const override { return base_; }
  std::uint64_t probes() const override { return probes_; }

  // A long run's records without a long run's memory: hands the records numbered below `end`
  // to `retire`, oldest first, and forgets them, stopping at the first one still pending
  // (its observer has not learnt of its change yet). Numbers stay as they were; records()
  // starts at record_base() afterwards. Whoever still reads records by number (a RaceWindows
  // index: RaceWindows::oldest_remembered) must be below `end`. Returns how many it retired.
  using RecordSink = std::function<void(const NotificationRecord&)>;
  std::size_t retire_records_before(std::size_t end, const RecordSink& retire);

  // The peers `observer` believes co-resident, sorted (empty if it has no view).
  virtual std::vector<VmId> view_of(VmId observer) const;
  // How many changes (events) were reported so far; the next change gets this index.
  std::uint64_t changes() const { return changes_; }
  const Topology& topology() const { return topology_; }

protected:
  explicit ViewKeepingSource(const Topology& topology) : topology_(topology) {}

  // One change's records: [first, last) in records(), and the subject's new co-residents (the
  // VMs on the arrival host at t_event, for a creation or a migration).
  struct Change {
    TopologyEvent event;
    std::uint64_t index = 0;
    std::size_t first = 0, last = 0;
    std::vector<VmId> arrival_peers;
  };
  // Checks the event against the topology (reported at once, in time order) and appends its
  // records; a VM that shut down stops observing (its pending records are abandoned).
  Change record_change(const TopologyEvent& event);
  // Every existing VM's view set to the truth, without records (the state at start-up).
  void init_views_from_topology();
  // Sets a view with no version bump or callback (start-up state).
  void set_initial_view(VmId observer, std::vector<VmId> peers);
  // A VM created or shut down starts from an empty view (an id may be reused).
  void reset_view(VmId vm);

  bool is_pending(std::size_t record) const { return pending(record); }
  // Marks one record notified at `now` (no effect if it is not pending).
  void mark_notified(std::size_t record, Nanos now);
  // Marks `observer`'s pending records of changes before `before_change` notified.
  void notify_pending(VmId observer, std::uint64_t before_change, Nanos now);
  // Delivers a change's advertisement: each still-pending observer updates its view by the
  // change (the subject takes its new host's residents) and its record is notified.
  // Returns how many records it notified.
  std::size_t deliver(const Change& change, Nanos now);

  void set_view(VmId observer, std::vector<VmId> peers, Nanos now); // peers sorted
  void add_peer(VmId observer, VmId peer, Nanos now);
  void remove_peer(VmId observer, VmId peer, Nanos now);
  // The observer's view changed: bump its version, call the subscribers.
  void view_changed(VmId observer, Nanos now);
  void count_probes(std::uint64_t n) { probes_ += n; }

private:
  struct View {
    std::vector<VmId> peers; // sorted
    std::uint64_t version = 0;
  };
  const Topology& topology_;
  std::unordered_map<VmId, View> views_;
  std::vector<ViewChanged> subscribers_;
  // Records numbered from base_: records_[k] is record base_ + k (and pending_state_[k] its
  // state). Retired records leave from the front, in batches (retire_records_before).
  std::vector<NotificationRecord> records_;
  std::vector<std::uint8_t> pending_state_; // per record: 1 while pending
  std::size_t base_ = 0;
  NotificationRecord& record(std::size_t n) { return records_[n - base_]; }
  bool pending(std::size_t n) const { return n >= base_ && pending_state_[n - base_] != 0; }
  std::size_t records_end() const { return base_ + records_.size(); }
  std::unordered_map<VmId, std::vector<std::size_t>> pending_; // per observer, change order
  std::uint64_t changes_ = 0;
  std::uint64_t probes_ = 0;
  Nanos last_event_ = 0;
};

// ---------------------------------------------------------------------------------------------
// XWAY: the administrator's list, read once. Lines are "host <id>: <vm> <vm> ..." and '#' starts
// a comment; a VM may be listed on one host only. Views never change at runtime, so every
// record keeps t_notified = kNever; probes() stays 0 (the truth is never looked at).
class StaticListError : public std::runtime_error {
public:
  StaticListError(std::string file, std::size_t line, const std::string& what);
  const std::string& file() const { return file_; }
  std::size_t line() const { return line_; }

private:
  std::string file_;
  std::size_t line_;
};

class StaticListSource final : public ViewKeepingSource {
public:
  // Throw StaticListError naming file:line and what was expected (or that the file cannot be
  // read). `origin` names the text in error messages.
  static std::unique_ptr<StaticListSource> from_file(const std::string& path,
                                                     const Topology& topology);
  static std::unique_ptr<StaticListSource>
  from_string(std::string_view text, const Topology& topology, std::string origin = "<string>");

  std::string_view name() const override { return "static"; }
  void on_event(const TopologyEvent& event) override { record_change(event); }
  Nanos next_due() const override { return kNever; }
  void run_due(Nanos) override {}
  // The host the list puts `vm` on, if any.
  std::optional<HostId> listed_host(VmId vm) const;

private:
  explicit StaticListSource(const Topology& topology) : ViewKeepingSource(topology) {}
  std::unordered_map<VmId, HostId> listed_;
};

// ---------------------------------------------------------------------------------------------
// IVC: VMs register into a group (the magic id) with the backend in their host's Dom0. Two VMs
// believe they are co-resident if both registered the same group from the same host. The
// registration remembers the host it was made from, so a VM that migrated keeps looking local
// to its old host's group and remote to its new one until it calls register_vm again. A created
// VM is in no group until it registers. A shutdown deregisters the VM at once (the backend sees
// the domain die).
//
// Records of a creation or migration are notified when the subject registers after it (that is
// when the group table tells the truth again); a shutdown's at t_event. One probe per
// registration.
class GroupRegistrationSource final : public ViewKeepingSource {
public:
  using GroupId = std::uint32_t;
  explicit GroupRegistrationSource(const Topology& topology) : ViewKeepingSource(topology) {}

  std::string_view name() const override { return "group"; }
  void on_event(const TopologyEvent& event) override;
  Nanos next_due() const override { return kNever; }
  void run_due(Nanos) override {}
  bool believes_co_resident(VmId observer, VmId peer) const override;
  std::vector<VmId> view_of(VmId observer) const override;

  // Registers (or re-registers) `vm` in `group` from the host it is on now. Throws
  // TopologyError for an unknown VM.
  void register_vm(VmId vm, GroupId group, Nanos now);
  void deregister_vm(VmId vm, Nanos now);
  struct Registration {
    GroupId group = 0;
    HostId host = 0; // where the VM was when it registered
  };
  std::optional<Registration> registration(VmId vm) const;

private:
  using Key = std::pair<GroupId, HostId>;
  struct KeyHash {
    std::size_t operator()(const Key& k) const {
      return std::hash<std::uint64_t>()((std::uint64_t(k.first) << 32) | k.second);
    }
  };
  void leave(VmId vm, Nanos now);
  // The group table tells the truth about `vm` again: its pending records are notified.
  void settle(VmId vm, Nanos now);
  std::unordered_map<VmId, Registration> registered_;
  std::unordered_map<Key, std::vector<VmId>, KeyHash> members_; // sorted
  std::unordered_map<VmId, std::vector<std::size_t>> pending_by_subject_;
};

// ---------------------------------------------------------------------------------------------
// Scanning sources: one scanner per host (a Dom0 discovery module). A scan probes every VM on
// its host (probes += VMs scanned) and, if something changed there since the last scan, sets
// every VM's view to the host's residents as scanned. With a propagation delay p the views
// change p after the scan. A VM's records are notified when its view is refreshed, so
// t_notified is the first scan (+ p) on the host the observer is on, at or after t_event.
// Scans that fall due while run_due is late are coalesced into one, stamped with `now`.
class ScanningSource : public ViewKeepingSource {
public:
  void on_event(const TopologyEvent& event) override;
  Nanos next_due() const override;
  void run_due(Nanos now) override;

  std::uint64_t scans() const { return scans_; }
  // When `host`'s scanner runs next (kNever if it has no scanner yet).
  Nanos next_scan(HostId host) const;

protected:
  // phase_step staggers the scanners: host h starts at phase + h * phase_step (mod the period).
  ScanningSource(const Topology& topology, Nanos initial_period, Nanos phase, Nanos phase_step,
                 Nanos propagation_delay);
  // After a scan of `host` at `now` that found `changes` changes since the previous scan,
  // `interval` ago: when the next scan is due (> now).
  virtual Nanos after_scan(HostId host, std::uint64_t changes, Nanos interval, Nanos now) = 0;
  // The first point at or after `t` of host's grid of period `period`.
  Nanos grid_at_or_after(HostId host, Nanos period, Nanos t) const;

private:
  struct Scanner {
    Nanos due = 0;
    Nanos last_scan = 0;
    std::uint64_t changes = 0; // since the last scan
    bool dirty = false;        // a view on this host may differ from the truth
  };
  struct Delivery {
    Nanos due = 0;
    HostId host = 0;
    std::vector<VmId> residents; // as scanned
    std::uint64_t before_change = 0;
  };
  Scanner& scanner(HostId host, Nanos t);
  void scan(HostId host, Nanos now);
  void refresh(HostId host, const std::vector<VmId>& residents, std::uint64_t before_change,
               Nanos now);

  Nanos initial_period_, phase_, phase_step_, delay_;
  std::unordered_map<HostId, Scanner> scanners_;
  using Due = std::pair<Nanos, HostId>;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> queue_; // one entry per scanner
  std::deque<Delivery> deliveries_; // in due order: the delay is constant
  std::uint64_t scans_ = 0;
};

// XenLoop's Dom0 discovery / MemPipe: every host scanned every `period`, on a fixed grid.
class PeriodicScanSource final : public ScanningSource {
public:
  PeriodicScanSource(const Topology& topology, Nanos period, Nanos phase = 0,
                     Nanos propagation_delay = 0, Nanos phase_step = 0);
  std::string_view name() const override { return "periodic"; }
  Nanos period() const { return period_; }

private:
  Nanos after_scan(HostId host, std::uint64_t changes, Nanos interval, Nanos now) override;
  Nanos period_;
};

// Periodic scan whose period follows the change rate, per host (survey 3.6.1: "smaller interval
// for frequent live migration and larger interval for infrequent").
//
// The rule, at each scan of a host at time s that saw n changes on it in the interval Δ since
// its previous scan (f = exp(-Δ / H), H the rate horizon):
//     C <- f C + n,   E <- f E + Δ,   r = C / E   (change rate, counts and time decayed alike)
//     T <- clamp(sqrt(2 c / r), T_min, T_max)     (T_max when r = 0)
//     next scan at s + T
// Why this T: with changes at rate r and scans every T, a change waits T/2 on average before a
// scan sees it, so a host spends r T / 2 of its time in race windows and 1 / T scans a second.
// Pricing one scan at c of race-window time (c = probe_worth), the total r T / 2 + c / T is
// least at T = sqrt(2 c / r): the square-root law. With one steady rate every fixed period is
// already on the exposure-against-probes front (exposure x probes is the same constant), and a
// period that wanders is behind it (E[T^2] / E[T] > T); so the estimate is kept steady with a
// long horizon rather than reacting to each scan. The rule beats every fixed period when rates
// differ between hosts or over time: the square-root law is then the optimal split of a probe
// budget. The estimate starts as if the last H had shown the rate for which the initial period
// is optimal (r0 = 2 c / T0^2), so T starts at the initial period.
class AdaptiveScanSource final : public ScanningSource {
public:
  struct Params {
    Nanos period_min = 1'000'000;       // T_min
    Nanos period_max = 1'000'000'000;   // T_max
    Nanos initial_period = 100'000'000; // clamped into [T_min, T_max]
    Nanos probe_worth = 2'500'000;      // c: the race-window time one scan is worth
    Nanos horizon = 30'000'000'000;     // H: the rate estimate's time constant
    Nanos phase = 0;
    Nanos phase_step = 0;
    Nanos propagation_delay = 0;
  };
  AdaptiveScanSource(const Topology& topology, Params params);
  std::string_view name() const override { return "adaptive"; }
  // The period `host`'s scanner uses now, and its change-rate estimate (changes per second).
  Nanos period(HostId host) const;
  double rate_per_second(HostId host) const;
  const Params& params() const { return params_; }

private:
  Nanos after_scan(HostId host, std::uint64_t changes, Nanos interval, Nanos now) override;
  struct Estimate {
    double changes = 0; // C, decayed
    double elapsed = 0; // E, ns, decayed
    Nanos period = 0;
  };
  Params params_;
  std::unordered_map<HostId, Estimate> estimates_;
};

// ---------------------------------------------------------------------------------------------
// XenVMC's vms[] / MMNet: each event is advertised to the affected VMs after a delay d
// (XenStore watch firing, message to each VM): t_notified = t_event + d. One probe per record
// delivered.
class EventWatchSource final : public ViewKeepingSource {
public:
  static constexpr Nanos kDefaultDelay = 50'000; // 50 us
  explicit EventWatchSource(const Topology& topology, Nanos delay = kDefaultDelay);
  std::string_view name() const override { return "watch"; }
  void on_event(const TopologyEvent& event) override;
  Nanos next_due() const override;
  void run_due(Nanos now) override;
  Nanos delay() const { return delay_; }

private:
  Nanos delay_;
  std::deque<Change> queue_; // due at event.time + delay, so in due order
};

// The survey's prevention by synchronous update: views change inside on_event, as part of the
// migration transaction, so t_notified = t_event and no race window opens. One probe per record.
class SynchronousSource final : public ViewKeepingSource {
public:
  explicit SynchronousSource(const Topology& topology);
  std::string_view name() const override { return "sync"; }
  void on_event(const TopologyEvent& event) override;
  Nanos next_due() const override { return kNever; }
  void run_due(Nanos) override {}
};

// ---------------------------------------------------------------------------------------------
// Choosing a source by name (scenario files, the CLI).
struct MembershipParams {
  // static: a file, or else the text itself
  std::string static_list_path;
  std::string static_list_text;
  // periodic (and adaptive's initial period, phase, phase_step, propagation_delay)
  Nanos period = 100'000'000;
  Nanos phase = 0;
  Nanos phase_step = 0;
  Nanos propagation_delay = 0;
  // adaptive
  Nanos period_min = 1'000'000;
  Nanos period_max = 1'000'000'000;
  Nanos probe_worth = 2'500'000;
  Nanos horizon = 30'000'000'000;
  // watch
  Nanos watch_delay = EventWatchSource::kDefaultDelay;
};

// kind: "static", "group", "periodic", "adaptive", "watch", "sync". Throws
// std::invalid_argument for another name or invalid parameters.
std::unique_ptr<MembershipSource> make_membership_source(std::string_view kind,
                                                         const Topology& topology,
                                                         const MembershipParams& params = {});
// The names make_membership_source accepts.
std::span<const std::string_view> membership_source_kinds();

// ---------------------------------------------------------------------------------------------
// Race windows (survey 6.3): is an operation by `observer` about `subject` at time `now` inside
// some [t_event, t_notified)? Answers the kind of the most recent such change, as `observer`
// sees it (Table IV's column), or nothing. Two cases make observer's belief about subject stale:
// a change of subject that observer has not learnt of yet, and a change of observer itself
// (creation, migration) that it has not learnt of yet while subject is on one of the hosts
// involved (the kind is then what subject saw: migration_out if subject is on the old host).
//
// Reads the source's records live (records appended or notified later are seen by later
// queries); O(log records of the pair) per query after an amortised O(1) per new record.
//
// Memory: by default the index keeps every record (a query may ask about any time). A caller
// whose queries come with non-decreasing `now` (a simulator's clock) constructs it with
// Queries::in_time_order: the index then forgets a change once every record of it is notified
// at or before the latest query's `now`, since no later query can find any of them open. Its
// size then follows the changes whose windows are still open, not all changes ever made (a
// record abandoned open, of an observer that shut down, keeps its change). Answers are the same.
class RaceWindows {
public:
  enum class Queries { any_time, in_time_order };
  explicit RaceWindows(const MembershipSource& source, Queries queries = Queries::any_time)
      : source_(source), forget_(queries == Queries::in_time_order) {}
  std::optional<ChangeKind> in_race_window(VmId observer, VmId subject, Nanos now) const;
  // The same, naming the change whose window it is (NotificationRecord::change): the latest
  // one still open.
  struct OpenWindow {
    std::uint64_t change = 0;
    ChangeKind kind = ChangeKind::creation;
  };
  std::optional<OpenWindow> open_window(VmId observer, VmId subject, Nanos now) const;
  // How many records the index holds: all indexed ones, or (in_time_order) those not forgotten.
  std::size_t remembered() const { return forget_ ? live_.size() : indexed_; }
  // The lowest record number the index may still read: the source may retire every record
  // below it (ViewKeepingSource::retire_records_before). Indexes what is new first.
  std::size_t oldest_remembered() const;

private:
  using Key = std::pair<std::uint64_t, std::uint64_t>;
  struct KeyHash {
    std::size_t operator()(const Key& k) const {
      return std::hash<std::uint64_t>()(k.first * 0x9E3779B97F4A7C15ull ^ k.second);
    }
  };
  void index() const;
  // Queries::in_time_order: drops the changes whose records are all notified at or before
  // `now` (amortised: when the live records have doubled since the last pass).
  void forget_closed(Nanos now) const;

  const MembershipSource& source_;
  const bool forget_;
  // Indexed lazily from the live records: single-threaded, like the sources.
  mutable std::size_t indexed_ = 0;
  mutable std::vector<std::size_t> live_; // in_time_order: the indexed records not forgotten
  mutable std::size_t live_after_pass_ = 0;
  mutable std::unordered_map<Key, std::vector<std::size_t>, KeyHash> by_pair_; // observer, subject
  mutable std::unordered_map<Key, std::size_t, KeyHash> by_change_observer_;   // non-self only
};

// Per change kind: how long observers took to learn of changes.
struct NotificationLatency {
  std::uint64_t records = 0;
  std::uint64_t notified = 0; // the rest never were (static list, an observer gone first)
  double mean = 0;            // of t_notified - t_event over notified records, ns
  Nanos max = 0;
};
struct NotificationSummary {
  std::array<NotificationLatency, 4> by_kind{}; // indexed by ChangeKind
  NotificationLatency all;
  const NotificationLatency& operator[](ChangeKind k) const {
    return by_kind[static_cast<std::size_t>(k)];
  }
};
NotificationSummary summarise(std::span<const NotificationRecord> records);

} // namespace ivmc
