// A domU's link that follows dom0's view service across save/restore (issue 14, Xen part):
// the sender may be moved within the machine (`xl save` + `xl restore`) and come back with a
// new domain id; the receiver stays.
//
// Sender (link_send_follow): reads its view, "VERSION NAME:DOMID ...", from
// /local/domain/<its current id>/data/ivmc-view (dom0's view service writes it, readable by
// this domain only) every 10 ms, and its own domain id with it. When the id changed, the
// domain was restored: every grant and event channel it had is gone. The ring instance in use
// is then broken (RestorablePath fails its sends at once), its unconsumed frames are re-sent on
// the remote path (LinkConfig::resend_unconsumed) and the instance is abandoned, never
// unmapped or unbound (XenPlatform::abandon). Until dom0 writes a view into the new domain's
// directory the domain has none, and talks remote: that is its race window, of the kind dom0
// left in data/ivmc-move (migration_in or migration_out) before unpausing it. Sends and link
// operations in that window are counted (RaceLedger). The stream stops when dom0 writes
// data/ivmc-stop. Ring instances are named "l<epoch>" with epoch = (domid << 32) | counter,
// so the receiver knows which domain to map from.
//
// Receiver (link_recv_follow): maps instance `epoch` from the domain in the epoch's upper
// half, only once its own view (also dom0's) lists the peer VM's name with that domain id:
// the trust list is dom0's, not the sender's word.
//
// Everything read from XenStore or from the wire is validated; a bad value is treated as "no
// view" or "not yet", never as data.
#pragma once

#include "ivmc/posix/workload.hpp"
#include "ivmc/xen/follow_view.hpp"
#include "ivmc/xen/xen_platform.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace ivmc::xen {

struct FollowJob {
  std::string peer_name;  // the link's other VM, as dom0's view names it
  std::uint32_t peer = 0; // its domain id at the start (the receiver: the sender's)
  std::string address;    // the receiver's TCP address
  std::uint16_t port = 0;
  XenEndpointOptions ring; // the rings' configuration (name is set per instance)
  std::uint32_t message = 4096;
  RacePolicy race = RacePolicy::resolution;
};

std::string view_key(std::uint32_t domid); // /local/domain/<id>/data/ivmc-view
std::string move_key(std::uint32_t domid); // .../data/ivmc-move (dom0: the restore's kind)
std::string stop_key(std::uint32_t domid); // .../data/ivmc-stop (dom0: end the stream)

posix::Report link_send_follow(XenPlatform& platform, const FollowJob& job, Nanos timeout);
posix::Report link_recv_follow(XenPlatform& platform, const FollowJob& job, Nanos timeout);

} // namespace ivmc::xen
