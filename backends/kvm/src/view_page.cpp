// The view page: see include/ivmc/kvm/view_page.hpp. No fmt: the static guest agent uses it.
#include "ivmc/kvm/view_page.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace ivmc::kvm {
namespace view_page {

std::optional<ChangeKind> View::race_with(VmId subject) const {
  if (subject > kMaxVms) return std::nullopt;
  const std::uint8_t k = race[subject];
  if (k == 0 || k > 4) return std::nullopt; // out of range: hostile or torn, not a window
  return static_cast<ChangeKind>(k - 1);
}

} // namespace view_page

namespace {

using view_page::Entry;
using view_page::Header;

std::atomic_ref<std::uint64_t> word(std::byte* page, std::size_t offset) {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(page + offset));
}

} // namespace

ViewPageReader::ViewPageReader(std::byte* page, VmId self) : page_(page), self_(self) {
  if (self == 0 || self > view_page::kMaxVms)
    throw std::invalid_argument("view page: VM id " + std::to_string(self) + " is not in 1..15");
}

view_page::View ViewPageReader::read() {
  const std::size_t e = view_page::entry_offset(self_);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    // Acquire: the fields read below are at least as new as this sequence number.
    const std::uint64_t s0 = word(page_, e + offsetof(Entry, seq)).load(std::memory_order_acquire);
    if (s0 % 2 != 0) continue;
    view_page::View v;
    // Relaxed: the fences around them order these loads against the sequence reads.
    v.version = word(page_, e + offsetof(Entry, version)).load(std::memory_order_relaxed);
    v.peers = word(page_, e + offsetof(Entry, peers)).load(std::memory_order_relaxed);
    v.host = word(page_, e + offsetof(Entry, host)).load(std::memory_order_relaxed);
    v.truth = word(page_, e + offsetof(Entry, truth)).load(std::memory_order_relaxed);
    v.truth_peers = word(page_, e + offsetof(Entry, truth_peers)).load(std::memory_order_relaxed);
    for (int i = 0; i < 2; ++i) {
      const std::uint64_t r =
          word(page_, e + offsetof(Entry, race) + 8 * i).load(std::memory_order_relaxed);
      std::memcpy(v.race + 8 * i, &r, 8);
    }
    // Acquire fence: the loads above complete before the sequence is read again.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (word(page_, e + offsetof(Entry, seq)).load(std::memory_order_relaxed) != s0) continue;
    last_ = v;
    return v;
  }
  return last_;
}

bool ViewPageReader::started() const {
  // Relaxed: a flag; nothing else is read through it.
  return word(page_, view_page::kHeaderOffset + offsetof(Header, start))
             .load(std::memory_order_relaxed) != 0;
}

bool ViewPageReader::stopped() const {
  // Relaxed: a flag; nothing else is read through it.
  return word(page_, view_page::kHeaderOffset + offsetof(Header, stop))
             .load(std::memory_order_relaxed) != 0;
}

ViewPageWriter::ViewPageWriter(const std::string& shm_name, std::size_t region_bytes) {
  const std::string path = "/dev/shm/" + shm_name;
  if (region_bytes < view_page::kPageBytes || region_bytes % view_page::kPageBytes != 0)
    throw std::invalid_argument("view page: bad region size for " + path);
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("view page: open " + path + ": " + std::strerror(errno));
  void* map = ::mmap(nullptr, view_page::kPageBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                     static_cast<off_t>(region_bytes - view_page::kPageBytes));
  ::close(fd);
  if (map == MAP_FAILED) throw std::runtime_error("view page: cannot map the last page of " + path);
  page_ = static_cast<std::byte*>(map);
  // Relaxed: the magic only names the layout for people reading a dump.
  word(page_, view_page::kHeaderOffset + offsetof(Header, magic))
      .store(view_page::kMagic, std::memory_order_relaxed);
}

ViewPageWriter::~ViewPageWriter() {
  if (page_ != nullptr) ::munmap(page_, view_page::kPageBytes);
}

void ViewPageWriter::write(VmId vm, const view_page::View& v) {
  if (vm == 0 || vm > view_page::kMaxVms) return;
  const std::size_t e = view_page::entry_offset(vm);
  auto seq = word(page_, e + offsetof(Entry, seq));
  // The region may have arrived with a guest (a copy): make the sequence even first.
  const std::uint64_t s = seq.load(std::memory_order_relaxed) | 1;
  seq.store(s, std::memory_order_relaxed); // odd: readers retry
  // Release fence: the odd sequence is visible before any field below changes.
  std::atomic_thread_fence(std::memory_order_release);
  // Relaxed: ordered by the fences around them.
  word(page_, e + offsetof(Entry, version)).store(v.version, std::memory_order_relaxed);
  word(page_, e + offsetof(Entry, peers)).store(v.peers, std::memory_order_relaxed);
  word(page_, e + offsetof(Entry, host)).store(v.host, std::memory_order_relaxed);
  word(page_, e + offsetof(Entry, truth)).store(v.truth, std::memory_order_relaxed);
  word(page_, e + offsetof(Entry, truth_peers)).store(v.truth_peers, std::memory_order_relaxed);
  for (int i = 0; i < 2; ++i) {
    std::uint64_t r;
    std::memcpy(&r, v.race + 8 * i, 8);
    word(page_, e + offsetof(Entry, race) + 8 * i).store(r, std::memory_order_relaxed);
  }
  // Release: every field above is visible before the even sequence that publishes them.
  seq.store(s + 1, std::memory_order_release);
}

void ViewPageWriter::set_start() {
  // Relaxed: a flag; the guest reads nothing through it.
  word(page_, view_page::kHeaderOffset + offsetof(Header, start))
      .store(1, std::memory_order_relaxed);
}

void ViewPageWriter::set_stop() {
  // Relaxed: a flag; the guest reads nothing through it.
  word(page_, view_page::kHeaderOffset + offsetof(Header, stop))
      .store(1, std::memory_order_relaxed);
}

} // namespace ivmc::kvm
