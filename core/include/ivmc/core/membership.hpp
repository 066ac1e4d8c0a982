// Co-residency: who shares a host with whom, as it really is (the topology) and as each VM
// believes it (a membership source's views), and the race windows between the two.
//
// Time is passed in explicitly (`now`) and sources are driven by the caller (next_due /
// run_due), so the same code runs under SimGrid's clock, on real hosts, and in deterministic
// tests on a virtual clock.
#pragma once

#include "ivmc/core/platform.hpp"

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace ivmc {

using VmId = std::uint32_t;
using HostId = std::uint32_t;
inline constexpr Nanos kNever = std::numeric_limits<Nanos>::max();

// The survey's <dom id, IP/MAC> pair that identifies a VM.
struct VmAddress {
  std::uint32_t dom_id = 0;
  std::string ip;
  std::string mac;
};

// The membership changes of the survey's Table IV (its columns).
enum class ChangeKind : std::uint8_t { migration_in, creation, migration_out, shutdown };
std::string_view to_string(ChangeKind k);

// One VM-level event as it really happened. A migration from host A to host B is one event:
// for observers on A it is a migration_out, for observers on B a migration_in.
struct TopologyEvent {
  enum class Kind : std::uint8_t { create, shutdown, migrate } kind;
  VmId vm = 0;
  HostId from = 0; // migrate, shutdown: the host it left
  HostId to = 0;   // migrate, create: the host it is on now
  Nanos time = 0;  // t_event
};

// For one membership change and one observing VM: when it happened and when the observer
// learnt of it (kNever if it never did, e.g. a static list). [t_event, t_notified) is the
// observer's race window for that change.
struct NotificationRecord {
  std::uint64_t change = 0;               // index of the change, in order of t_event
  ChangeKind kind = ChangeKind::creation; // as seen by this observer
  VmId subject = 0;                       // the VM that was created/shut down/migrated
  VmId observer = 0;                      // the VM whose view was (eventually) updated
  Nanos t_event = 0;
  Nanos t_notified = kNever;
};

// A membership policy (static list, group registration, periodic scan, event-driven watch,
// synchronous update, adaptive scan): maintains each VM's view of its co-residents.
class MembershipSource {
public:
  virtual ~MembershipSource() = default;
  virtual std::string_view name() const = 0;

  // The platform reports what really happened. A synchronous source updates the affected
  // views before returning (the update is part of the migration transaction); others schedule.
  virtual void on_event(const TopologyEvent& event) = 0;
  // Time-driven work (scans, delayed advertisements): when run_due() must next be called.
  virtual Nanos next_due() const = 0;
  virtual void run_due(Nanos now) = 0;

  // What `observer` currently believes: is `peer` on its host?
  virtual bool believes_co_resident(VmId observer, VmId peer) const = 0;
  // Incremented each time `observer`'s view changes (a link compares it before each send).
  virtual std::uint64_t view_version(VmId observer) const = 0;
  // Called after `observer`'s view changed, at time `now`.
  using ViewChanged = std::function<void(VmId observer, Nanos now)>;
  virtual void subscribe(ViewChanged callback) = 0;

  // The records kept: records()[k] is record number record_base() + k. Every record is kept
  // unless the platform retires old ones (ViewKeepingSource::retire_records_before), which
  // moves record_base() on; record numbers never change.
  virtual const std::vector<NotificationRecord>& records() const = 0;
  virtual std::size_t record_base() const { return 0; }
  // Cost of keeping views fresh: how many times the source probed the truth (scans, checks).
  virtual std::uint64_t probes() const = 0;
};

} // namespace ivmc
