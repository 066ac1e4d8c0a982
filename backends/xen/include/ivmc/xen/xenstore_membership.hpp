// Which domains run on this machine, as dom0 learns it from XenStore, feeding the core's
// membership machinery (core/include/ivmc/core/membership.hpp): each domain that appears or
// disappears under /local/domain becomes a TopologyEvent (create / shutdown of VM <domid> on
// host 0) applied to topology() and passed to source(), a core MembershipSource chosen by name
// ("sync" updates every view at once), so views, view versions and race windows work as on any
// platform.
//
// Two ways of learning, as in the survey:
//   scan   XenLoop's Dom0 discovery: read the /local/domain directory every `period`
//   watch  event-driven: a XenStore watch on /local/domain (only events naming a domain's own
//          directory, /local/domain/<id>, lead to a re-read), on a connection of its own
// The toolstack creates /local/domain/<id> when it builds a domain and removes it when it
// destroys one. Directory names are checked (decimal domain ids) before use.
#pragma once

#include "ivmc/core/membership_sources.hpp"
#include "ivmc/core/topology.hpp"
#include "ivmc/xen/xenstore.hpp"

#include <cstdint>
#include <memory>
#include <set>
#include <string_view>
#include <vector>

namespace ivmc::xen {

// True for "/local/domain/<id>" exactly, with <id> a domain id: the events the watch re-reads on
// (a domain's own deeper writes, and anything else, are not membership changes).
bool names_domain_directory(std::string_view path);

class XenStoreMembership {
public:
  enum class Mode { scan, watch };
  struct Change {
    ChangeKind kind = ChangeKind::creation; // creation or shutdown
    std::uint32_t domid = 0;
    Nanos detected = 0; // CLOCK_MONOTONIC when this side learnt of it
  };

  // Opens its own XenStore connection and reads the domains present now (they are created in
  // topology() at once; no Change is returned for them). Throws XenError.
  XenStoreMembership(Mode mode, Nanos period, std::string_view source_kind = "sync",
                     const MembershipParams& params = {});
  ~XenStoreMembership();

  // Waits up to `timeout` and returns the changes found (empty if none). Scan mode sleeps until
  // its next scan; watch mode until a relevant XenStore event.
  std::vector<Change> wait(Nanos timeout);

  const std::set<std::uint32_t>& domains() const { return domains_; }
  const Topology& topology() const { return topology_; }
  MembershipSource& source() { return *source_; }
  std::uint64_t directory_reads() const { return reads_; }
  Mode mode() const { return mode_; }

private:
  std::vector<Change> reread(Nanos now);

  Mode mode_;
  Nanos period_;
  XenStore store_;                        // directory reads
  std::unique_ptr<XenStore> watch_store_; // watch mode: the watch only (see the .cpp)
  Topology topology_;
  std::unique_ptr<MembershipSource> source_;
  std::set<std::uint32_t> domains_;
  Nanos next_scan_ = 0;
  std::uint64_t reads_ = 0;
};

} // namespace ivmc::xen
