// dom0's view service (issue 14, Xen part): each trusted domU's view of its co-resident peers,
// derived from a XenStore membership source, written where the domU reads it.
//
// - Learning: XenStoreMembership (scan of /local/domain every `period`, XenLoop's discovery, or
//   a watch), on a thread of its own; or `sync`, where the one who changes the machine (the
//   migration player) calls learn_now() before the domain runs again.
// - Trust list: the VM names given at construction (the plan's VMs). A domain that appears is
//   named by /local/domain/<id>/name, which the toolstack writes and the domain may not; a
//   domain whose name is not in the list (or not readable, or not a plan name) never appears
//   in any view.
// - Hosts: one Xen machine stands for all the scenario's hosts. The service places a VM on the
//   host the player said it is on (moving()), and the view of X lists every other trusted VM
//   it knows a live domain of on X's host, "VERSION NAME:DOMID ...", written to
//   /local/domain/<X>/data/ivmc-view, owned by dom0 and readable by X only. VERSION counts
//   the service's writes.
// - Timing: for each domain it learns of, the time it learnt (CLOCK_MONOTONIC), so the player
//   can tell how long a restored domain ran without a view (its race window).
#pragma once

#include "ivmc/xen/xen_platform.hpp"
#include "ivmc/xen/xenstore_membership.hpp"

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

namespace ivmc::xen {

class ViewService {
public:
  enum class Learning { scan, watch, sync };
  struct Vm {
    std::uint32_t domid = 0; // 0: no live domain known
    std::size_t host = 0;
  };
  // `vms`: the trusted VMs, their domains now and hosts. Writes every view at once. Opens its
  // own XenStore connection (one connection used from two threads failed with EBADF/EINVAL).
  ViewService(std::map<std::string, Vm> vms, Learning learning, Nanos period);
  ~ViewService(); // stops the learning thread
  ViewService(const ViewService&) = delete;
  ViewService& operator=(const ViewService&) = delete;

  // The player: `name`'s next domain runs on `host`.
  void moving(const std::string& name, std::size_t host);
  // sync: the player says `name` runs as `domid` now; views are rewritten before it returns.
  void learn_now(const std::string& name, std::uint32_t domid);
  // When the service first wrote a view naming `domid` as its own (kNever if not yet).
  Nanos view_written_at(std::uint32_t domid) const;
  std::uint64_t directory_reads() const { return reads_.load(std::memory_order_relaxed); }
  std::uint64_t writes() const; // views written

private:
  void run();
  void on_created(std::uint32_t domid); // mutex held
  void on_gone(std::uint32_t domid);    // mutex held
  void write_views();                   // mutex held

  XenStore store_; // views and names, under mutex_
  Learning learning_;
  Nanos period_;
  mutable std::mutex mutex_;
  std::map<std::string, Vm> vms_;
  std::map<std::string, std::size_t> next_host_;
  std::map<std::uint32_t, std::string> written_; // domid -> last view text
  std::map<std::uint32_t, Nanos> first_written_; // domid -> when its first view was written
  std::uint64_t version_ = 0;
  std::atomic<std::uint64_t> reads_{0}; // relaxed: a counter read for the report only
  std::atomic<bool> stop_{false};       // relaxed is enough: the thread re-checks every wait
  std::unique_ptr<XenStoreMembership> membership_;
  std::thread thread_;
};

} // namespace ivmc::xen
