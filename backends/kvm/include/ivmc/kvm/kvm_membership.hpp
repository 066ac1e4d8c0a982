// The hosts' membership source on a real KVM machine.
//
// The truth comes from QEMU: a guest runs on host H once H's QEMU for it reports RESUME (its
// first start, or the end of an incoming live migration), and has left when that QEMU is gone
// without a migration (shutdown). These become the core's TopologyEvents and feed one of the
// core's membership sources, the same classes the simulation runs (event-driven watch, or
// XenLoop's periodic scan), so race windows are measured the same way in both.
//
// A view is published to its guest through the guest's host word (the agent's --host-word): a
// 64-bit word in the region where the host the guest believes it is on writes its identity.
// A master=on region migrates with the guest, so the word arrives holding the old host's
// value until the destination's view update overwrites it: until then the guest still
// believes it is where it was (its race window). The guest compares the word with its peer's
// host to decide co-residency (link_stream.hpp).
//
// Thread-safe: QMP readers and the ticker may call in from any thread.
#pragma once

#include "ivmc/core/membership.hpp"
#include "ivmc/core/membership_sources.hpp"
#include "ivmc/core/topology.hpp"
#include "ivmc/kvm/qmp.hpp"
#include "ivmc/kvm/view_page.hpp"

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace ivmc::kvm {

// Stores `value` in the 64-bit word at `offset` of the POSIX shm object /dev/shm/<shm_name>.
// Throws naming the object on failure.
void write_host_word(const std::string& shm_name, std::size_t offset, std::uint64_t value);

struct KvmMembershipOptions {
  enum class Policy : std::uint8_t { watch, periodic } policy = Policy::watch;
  Nanos delay = 0;            // watch: advertisement delay after the event is seen
  Nanos period = 100'000'000; // periodic: scan period
  std::size_t host_word = 0;  // offset of the host word in every host's region
  // Any of the core's sources by name (make_membership_source: "static", "periodic", "watch",
  // "sync", ...) with its parameters, instead of `policy`; empty: `policy`.
  std::string source_kind;
  MembershipParams params;
  // Hosts (id -> shm object) and VMs (id -> host) that exist before the source starts: the
  // views start from this truth, as in the simulator.
  std::map<HostId, std::string> initial_hosts;
  std::map<VmId, HostId> initial_vms;
  // Non-zero: every host's region is this large and its last page is a view page
  // (view_page.hpp), where every guest's view, truth and race flags are written whenever
  // the truth changes or a view is updated. VM ids must be in 1..view_page::kMaxVms.
  std::size_t region_bytes = 0;
};

class KvmMembership {
public:
  explicit KvmMembership(KvmMembershipOptions options);
  ~KvmMembership(); // stops the ticker

  // A host: its id (what its guests' host words say) and its ivshmem server's shm object.
  void add_host(HostId host, const std::string& shm_name);
  // A guest whose QEMU runs on `host` from its start (created now; its word is published).
  // A QEMU started paused or -incoming reports its RESUME instead.
  void add_guest(VmId vm, HostId host);
  // One QMP event from the QEMU of `vm` that runs on `host`. RESUME: the guest runs on `host`
  // now (created, or migrated in). Other events are ignored.
  void on_qmp_event(VmId vm, HostId host, const QmpEvent& event);
  // `vm` runs on `host` from now on, before its QEMU there resumes it: a migration whose
  // destination waits paused (-S) until this returned, so that a synchronous source updates
  // every view while the guest cannot run (the survey's synchronous update). The RESUME that
  // follows is then no change.
  void migrated(VmId vm, HostId host);
  // The view pages' start and stop flags (with region_bytes).
  void start_workloads();
  void stop_workloads();
  // `vm`'s QEMU on `host` ended without migrating away: shutdown.
  void guest_ended(VmId vm, HostId host);
  // Server notices (IvshmemServerOptions::on_peer): `vm`'s device is peer `peer` of `host`'s
  // server from now on; a disconnect of that peer is guest_ended(vm, host) (ignored when the
  // guest had migrated away: the source QEMU's device leaves after the move).
  void bind_peer(HostId host, std::uint16_t peer, VmId vm);
  void on_server_notice(HostId host, std::uint16_t peer, bool connected);

  // The source's records (NotificationRecord: t_event, t_notified per observer), a copy.
  std::vector<NotificationRecord> records() const;
  std::string_view policy_name() const;
  // The source's probes (MembershipSource::probes: scans' and updates' truth checks).
  std::uint64_t probes() const;
  // Each migration's arrival as the guest lived it: QEMU's RESUME on the destination (its
  // own timestamp) and the moment its host word there was written. The guest's true race
  // window; the records' t_event is when this source could first act on the event.
  struct Arrival {
    VmId vm = 0;
    HostId host = 0;
    Nanos resumed = 0, published = 0; // posix::MonotonicClock
  };
  std::vector<Arrival> arrivals() const;
  // Where `vm` is, as QEMU says (0 if nowhere).
  HostId host_of(VmId vm) const;

private:
  void tick_loop();
  void publish_notified(); // writes the words of guests whose own change was just notified
  Nanos run_due_locked();  // runs what is due now; returns now
  void write_pages_locked(Nanos now); // every guest's entry into every host's view page

  KvmMembershipOptions options_;
  mutable std::mutex mutex_;
  Topology topology_;
  std::unique_ptr<MembershipSource> source_;
  std::unique_ptr<RaceWindows> windows_;
  std::map<HostId, std::unique_ptr<ViewPageWriter>> pages_;
  std::map<VmId, HostId> believed_; // where each guest was last told it is
  std::map<HostId, std::string> hosts_;
  std::set<VmId> guests_; // the VMs that are guests of ours (their words are published)
  Nanos last_run_ = 0;
  std::map<std::pair<HostId, std::uint16_t>, VmId> peers_; // bound server peers
  std::map<VmId, Nanos> resumed_at_; // migrations whose word is not written yet
  std::vector<Arrival> arrivals_;
  std::vector<bool> published_; // per record: handled by publish_notified()
  std::size_t first_unpublished_ = 0;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread ticker_;
};

} // namespace ivmc::kvm
