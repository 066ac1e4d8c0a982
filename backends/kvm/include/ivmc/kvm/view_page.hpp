// The view page: what a KVM host's membership source tells the guests on that host, in the
// last page of the host's ivshmem region (after the 64-bit host word at its start).
//
// For each VM id 1..kMaxVms one entry, behind a sequence lock (an entry is several words):
//   - its view: the version and the VMs it believes co-resident (a bit per id), and the host
//     it believes it is on (its own last notified arrival);
//   - the truth: the host it is really on and the VMs really co-resident with it (what a
//     prevention probe reads);
//   - per subject, whether an operation by this VM about that subject runs inside a race
//     window now, and of which kind (RaceWindows' answer, re-evaluated by the host at each
//     change and each view update).
// and, for the whole page, the run's start and stop flags (the kvm backend starts and ends
// the guests' workloads through them).
//
// The page is in shared memory every guest of the host can write: a guest reads it as
// hostile input (bounded retries, kinds range-checked) and can only mislead itself. The host
// writes and never reads it. A master=on region migrates with its guest, so the destination's
// page arrives as a copy of the source's until the destination host rewrites it.
#pragma once

#include "ivmc/core/membership.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace ivmc::kvm {

namespace view_page {

inline constexpr std::size_t kPageBytes = 4096;
inline constexpr std::size_t kHeaderOffset = 64; // after the host word's cache line
inline constexpr VmId kMaxVms = 15;              // ids 1..15 (a bit each in a 64-bit mask)
inline constexpr std::uint64_t kMagic = 0x3167617076636d69; // "imcvpag1"

struct Header {
  std::uint64_t magic;
  std::uint64_t start; // non-zero: the workloads may begin
  std::uint64_t stop;  // non-zero: the workloads end now
  std::uint64_t reserved[5];
};

struct Entry {
  std::uint64_t seq;         // sequence lock: odd while the host writes the entry
  std::uint64_t version;     // the view's version
  std::uint64_t peers;       // bit v: VM v is in the view (believed co-resident)
  std::uint64_t host;        // the host this VM believes it is on, plus one (0: not known)
  std::uint64_t truth;       // the host it is really on, plus one (0: nowhere)
  std::uint64_t truth_peers; // bit v: VM v is really co-resident
  std::uint8_t race[16];     // per subject id: 0 outside every race window, else kind + 1
};

static_assert(sizeof(Header) == 64);
static_assert(sizeof(Entry) == 64);
// Entry v lives at kHeaderOffset + 64 * v (entry 0 unused: the header's line is before it).
inline constexpr std::size_t entry_offset(VmId v) {
  return kHeaderOffset + 64 * static_cast<std::size_t>(v);
}
static_assert(entry_offset(kMaxVms) + sizeof(Entry) <= kPageBytes);

// One entry as read (a consistent snapshot).
struct View {
  std::uint64_t version = 0, peers = 0, host = 0, truth = 0, truth_peers = 0;
  std::uint8_t race[16] = {};
  bool believes(VmId peer) const { return peer <= kMaxVms && ((peers >> peer) & 1) != 0; }
  bool co_resident(VmId peer) const { return peer <= kMaxVms && ((truth_peers >> peer) & 1) != 0; }
  // The race window an operation about `subject` is in now, if any.
  std::optional<ChangeKind> race_with(VmId subject) const;
};

} // namespace view_page

// Guest side: reads the page at `page` (the region's last page, mapped in the guest).
class ViewPageReader {
public:
  ViewPageReader(std::byte* page, VmId self);
  // The latest consistent snapshot of this VM's entry; the previous one if the host kept
  // writing through every retry (it writes rarely, so that means a hostile writer).
  view_page::View read();
  bool started() const;
  bool stopped() const;

private:
  std::byte* page_;
  VmId self_;
  view_page::View last_;
};

// Host side: maps the last page of /dev/shm/<shm_name> (a region of `region_bytes`) and
// writes into it. Throws naming the object when it cannot.
class ViewPageWriter {
public:
  ViewPageWriter(const std::string& shm_name, std::size_t region_bytes);
  ~ViewPageWriter();
  ViewPageWriter(const ViewPageWriter&) = delete;
  ViewPageWriter& operator=(const ViewPageWriter&) = delete;
  void write(VmId vm, const view_page::View& view);
  void set_start();
  void set_stop();

private:
  std::byte* page_ = nullptr;
};

} // namespace ivmc::kvm
