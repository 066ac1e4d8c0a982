// A checked stream over a link (link.hpp) between two ivshmem peers, one of which may be a
// guest that live-migrates between hosts: the shared-memory channel while they share a host,
// the resumable TCP path (posix/resumable_path.hpp) otherwise, switched by the guest's membership
// view with nothing lost, duplicated or reordered.
//
// The guest's view is its host word: a 64-bit word in the region that each host's membership
// source sets to that host's identity when a guest arrives (KvmMembership, kvm_membership.hpp).
// The peer is co-resident while the word equals `peer_host`. When the word changes the
// guest's remote connection is presumed dead too (user networking stays with the source QEMU)
// and is re-made.
//
// Each establishment of the local path is a new channel instance (an epoch) in its own slot
// of the region: after a migration back, the old slot holds the state the guest left behind
// on the other host, and the receiver must never mistake it for a fresh one.
//
// The sender is the guest (it creates the channels); the receiver a host process that follows
// the frames. The stream loops, its content and checksum are posix/link_stream.hpp's.
#pragma once

#include "ivmc/core/link.hpp"
#include "ivmc/kvm/ivshmem_platform.hpp"
#include "ivmc/kvm/view_page.hpp"
#include "ivmc/posix/link_stream.hpp"
#include "ivmc/posix/resumable_path.hpp"
#include "ivmc/posix/tcp_path.hpp"
#include "ivmc/posix/workload.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ivmc::kvm {

// Where epoch e's channel lives: slot (e - 1) % count, each slot_bytes long from first_offset.
struct LinkSlots {
  std::size_t first_offset = 0;
  std::size_t slot_bytes = 0; // a page multiple, at least Channel::area_bytes(ring, ring)
  unsigned count = 2;
  std::size_t offset(std::uint64_t epoch) const;
};

// The guest's view from the region's view page (view_page.hpp) instead of the host word: the
// co-resident VM ids and version its host's membership source wrote, the truth for prevention
// probes, and the race flags its race ledger counts by. The stream waits for the page's start
// flag and ends at its stop flag.
struct LinkViewOptions {
  std::size_t page = 0; // BAR2 offset of the view page (the region's last page)
  VmId self = 0, peer = 0;
};

struct LinkSendOptions {
  EndpointOptions endpoint; // the channels' configuration (the offset comes from `slots`)
  LinkSlots slots;
  std::optional<LinkViewOptions> view; // else the host word is the view
  std::size_t host_word = 0;           // BAR2 offset of the host word
  std::uint64_t peer_host = 0;         // the receiver's host: co-resident while the word is this
  std::string remote_address; // the receiver's resumable path, e.g. 10.0.2.2 (user networking)
  std::uint16_t remote_port = 0;
  posix::ResumableOptions remote;
  LinkConfig link;
  std::uint64_t max_bytes = std::uint64_t{1} << 40;
  std::uint64_t after = 32u << 20; // bytes to send after the `moves`-th host change
  unsigned moves = 0;              // 0: just send max_bytes
  std::uint32_t message = 4096;
  Nanos timeout = 60'000'000'000;
};

// Guest side: streams until done, returns the report (mode=link-send): bytes, checksum, and
// the link's counters; prints `IVMC-LINK` lines on each host change and path switch. With a
// view page, also the race ledger (race_<op>_<kind>_ops/errors/deferred/bytes, by the
// indices of LinkOperation and ChangeKind), race_outside, and sends_in_window (sends made
// while the page said the sender's view of its peer was stale).
posix::Report link_send(IvshmemPlatform& platform, const LinkSendOptions& options);

struct LinkReceiveOptions {
  EndpointOptions endpoint; // the attach side's configuration
  LinkSlots slots;
  posix::ResumableOptions remote;
  Nanos timeout = 60'000'000'000; // longest wait for one message
};

// Host side: receives until the sender finishes, checking every byte against the stream.
// The report (mode=link-recv) carries the link's counters; `changes` gets every path change.
posix::Report link_receive(IvshmemPlatform& platform, posix::TcpListener& listener,
                           const LinkReceiveOptions& options,
                           std::vector<posix::PathChange>* changes = nullptr);

} // namespace ivmc::kvm
