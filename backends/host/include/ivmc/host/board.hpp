// The board: what the host backend's orchestrator tells every VM process about co-residency,
// in one shared-memory object the orchestrator writes and the VM processes map read-only.
//
// For each VM it holds
//   - its view (the membership source's belief: which VMs it thinks share its host, and the
//     view's version), behind a sequence lock, since a view is several words;
//   - the truth (the host it is really on, 0 while it does not exist): what a prevention
//     probe reads;
// and for each ordered pair (observer, subject) whether an operation by observer about subject
// is inside a race window now, and of which kind (RaceWindows' answer, re-evaluated by the
// orchestrator every time a change happens or a view is updated).
//
// The VM processes are the orchestrator's own children, but the board is still mapped
// PROT_READ there: a VM process can never change what another one believes.
#pragma once

#include "ivmc/core/membership.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace ivmc::host {

class Board {
public:
  // VM ids are 1..vms (the scenario's order, then VMs created by events).
  static constexpr std::uint32_t kMaxVms = 256;

  // Orchestrator: a new board for `vms` VMs in a memfd (no views, nobody on a host).
  static Board create(std::uint32_t vms);
  // VM process: maps an inherited board fd read-only; checks its header. Throws naming what
  // is wrong.
  static Board open_read_only(int fd);

  Board(Board&&) noexcept;
  Board& operator=(Board&&) noexcept;
  Board(const Board&) = delete;
  Board& operator=(const Board&) = delete;
  ~Board();

  int fd() const { return fd_; }
  std::uint32_t vms() const { return vms_; }

  // --- orchestrator (single writer) ---
  void set_view(VmId observer, const std::vector<VmId>& peers, std::uint64_t version);
  void set_host(VmId vm, std::optional<HostId> host);
  void set_race(VmId observer, VmId subject, std::optional<ChangeKind> kind);

  // --- anyone ---
  // Does `observer`'s view hold `peer`? Also returns the view's version.
  bool believes(VmId observer, VmId peer, std::uint64_t* version = nullptr) const;
  std::uint64_t view_version(VmId observer) const;
  // The host `vm` is really on; nothing while it does not exist.
  std::optional<HostId> host_of(VmId vm) const;
  // Both exist and share a host (a prevention probe).
  bool co_resident(VmId a, VmId b) const;
  std::optional<ChangeKind> race(VmId observer, VmId subject) const;

private:
  struct Layout;
  Board(int fd, void* base, std::size_t bytes, std::uint32_t vms, bool writable);
  Layout& layout() const;
  std::size_t view_words() const { return (vms_ + 64) / 64; } // bit v for VM id v
  std::atomic<std::uint64_t>* view_slot(VmId vm) const;       // seq, version, words...
  std::atomic<std::uint32_t>* host_slot(VmId vm) const;
  std::atomic<std::uint8_t>* race_slot(VmId observer, VmId subject) const;

  int fd_ = -1;
  void* base_ = nullptr;
  std::size_t bytes_ = 0;
  std::uint32_t vms_ = 0;
  bool writable_ = false;
};

} // namespace ivmc::host
