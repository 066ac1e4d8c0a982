// The board's layout and its sequence lock (board.hpp).
#include "ivmc/host/board.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

namespace ivmc::host {

namespace {
constexpr std::uint64_t kMagic = 0x6472616f62636d76; // "vmcboard", little-endian
std::runtime_error os_error(const std::string& what) {
  return std::runtime_error("board: " + what + ": " + std::strerror(errno));
}
} // namespace

// Header, then for each VM id 0..vms (0 unused): its view slot (sequence, version, bit words),
// its host word, and a row of race bytes, one per subject.
struct Board::Layout {
  std::uint64_t magic;
  std::uint32_t vms;
  std::uint32_t reserved;
};

namespace {
std::size_t view_slot_words(std::uint32_t vms) {
  return 2 + (vms + 64) / 64;
}
std::size_t bytes_for(std::uint32_t vms) {
  const std::size_t ids = vms + 1;
  const std::size_t views = ids * view_slot_words(vms) * 8;
  const std::size_t hosts = ids * 4;
  const std::size_t races = ids * ids;
  const std::size_t raw = 64 + views + hosts + races;
  return (raw + 4095) / 4096 * 4096;
}
} // namespace

Board Board::create(std::uint32_t vms) {
  if (vms == 0 || vms > kMaxVms) {
    throw std::invalid_argument("board: " + std::to_string(vms) + " VMs (1 to " +
                                std::to_string(kMaxVms) + " supported)");
  }
  const int fd = ::memfd_create("ivmc-host-board", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) throw os_error("memfd_create");
  const std::size_t bytes = bytes_for(vms);
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    ::close(fd);
    throw os_error("ftruncate");
  }
  // Its size is final: no process holding the fd can make the others' mappings fault.
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    ::close(fd);
    throw os_error("sealing");
  }
  void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    ::close(fd);
    throw os_error("mmap");
  }
  Board b(fd, base, bytes, vms, true);
  b.layout().vms = vms;
  b.layout().magic = kMagic;
  return b;
}

Board Board::open_read_only(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw os_error("fstat of the inherited board");
  const auto bytes = static_cast<std::size_t>(st.st_size);
  if (bytes < 4096) throw std::runtime_error("board: the inherited fd is too small");
  void* base = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) throw os_error("mmap of the inherited board");
  const auto* l = static_cast<const Layout*>(base);
  if (l->magic != kMagic || l->vms == 0 || l->vms > kMaxVms || bytes_for(l->vms) != bytes) {
    ::munmap(base, bytes);
    throw std::runtime_error("board: the inherited fd is not a board of this build");
  }
  return Board(fd, base, bytes, l->vms, false);
}

Board::Board(int fd, void* base, std::size_t bytes, std::uint32_t vms, bool writable)
    : fd_(fd), base_(base), bytes_(bytes), vms_(vms), writable_(writable) {}

Board::Board(Board&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), base_(std::exchange(o.base_, nullptr)),
      bytes_(std::exchange(o.bytes_, 0)), vms_(o.vms_), writable_(o.writable_) {}

Board& Board::operator=(Board&& o) noexcept {
  if (this != &o) {
    this->~Board();
    new (this) Board(std::move(o));
  }
  return *this;
}

Board::~Board() {
  if (base_ != nullptr) ::munmap(base_, bytes_);
  if (fd_ >= 0 && writable_) ::close(fd_); // a VM process's fd is its caller's
}

Board::Layout& Board::layout() const {
  return *static_cast<Layout*>(base_);
}

std::atomic<std::uint64_t>* Board::view_slot(VmId vm) const {
  auto* first = reinterpret_cast<std::atomic<std::uint64_t>*>(static_cast<std::byte*>(base_) + 64);
  return first + static_cast<std::size_t>(vm) * view_slot_words(vms_);
}

std::atomic<std::uint32_t>* Board::host_slot(VmId vm) const {
  auto* after_views = static_cast<std::byte*>(base_) + 64 + (vms_ + 1) * view_slot_words(vms_) * 8;
  return reinterpret_cast<std::atomic<std::uint32_t>*>(after_views) + vm;
}

std::atomic<std::uint8_t>* Board::race_slot(VmId observer, VmId subject) const {
  auto* races = reinterpret_cast<std::byte*>(host_slot(0) + (vms_ + 1));
  return reinterpret_cast<std::atomic<std::uint8_t>*>(races) +
         static_cast<std::size_t>(observer) * (vms_ + 1) + subject;
}

void Board::set_view(VmId observer, const std::vector<VmId>& peers, std::uint64_t version) {
  if (!writable_ || observer == 0 || observer > vms_) throw std::logic_error("board: set_view");
  std::atomic<std::uint64_t>* slot = view_slot(observer);
  const std::uint64_t seq = slot[0].load(std::memory_order_relaxed);
  slot[0].store(seq + 1, std::memory_order_relaxed); // odd: readers retry
  // release fence: the odd sequence is visible before any of the words below change.
  std::atomic_thread_fence(std::memory_order_release);
  std::vector<std::uint64_t> words(view_words(), 0);
  for (VmId p : peers) {
    if (p != 0 && p <= vms_) words[p / 64] |= std::uint64_t{1} << (p % 64);
  }
  slot[1].store(version, std::memory_order_relaxed); // ordered by the fences around it
  for (std::size_t i = 0; i < words.size(); ++i) {
    slot[2 + i].store(words[i], std::memory_order_relaxed); // ordered by the fences around it
  }
  // release: a reader that sees the even sequence sees every word written above.
  slot[0].store(seq + 2, std::memory_order_release);
}

bool Board::believes(VmId observer, VmId peer, std::uint64_t* version) const {
  if (observer == 0 || observer > vms_ || peer == 0 || peer > vms_) return false;
  const std::atomic<std::uint64_t>* slot = view_slot(observer);
  for (;;) {
    // acquire: the words read below are at least as new as this sequence.
    const std::uint64_t before = slot[0].load(std::memory_order_acquire);
    if (before & 1) continue; // the orchestrator is writing: a few words, retry
    const std::uint64_t v = slot[1].load(std::memory_order_relaxed); // checked by the sequence
    const std::uint64_t w = slot[2 + peer / 64].load(std::memory_order_relaxed); // same
    // acquire fence: the loads above complete before the sequence is read again.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (slot[0].load(std::memory_order_relaxed) != before) continue; // torn: retry
    if (version != nullptr) *version = v;
    return (w >> (peer % 64)) & 1;
  }
}

std::uint64_t Board::view_version(VmId observer) const {
  if (observer == 0 || observer > vms_) return 0;
  std::uint64_t v = 0;
  believes(observer, observer, &v);
  return v;
}

void Board::set_host(VmId vm, std::optional<HostId> host) {
  if (!writable_ || vm == 0 || vm > vms_) throw std::logic_error("board: set_host");
  // release: a VM that reads the new host also sees every view written before it.
  host_slot(vm)->store(host ? *host + 1 : 0, std::memory_order_release);
}

std::optional<HostId> Board::host_of(VmId vm) const {
  if (vm == 0 || vm > vms_) return std::nullopt;
  // acquire: pairs with set_host's release.
  const std::uint32_t h = host_slot(vm)->load(std::memory_order_acquire);
  if (h == 0) return std::nullopt;
  return h - 1;
}

bool Board::co_resident(VmId a, VmId b) const {
  const auto ha = host_of(a), hb = host_of(b);
  return ha && hb && *ha == *hb;
}

void Board::set_race(VmId observer, VmId subject, std::optional<ChangeKind> kind) {
  if (!writable_ || observer == 0 || observer > vms_ || subject == 0 || subject > vms_) {
    throw std::logic_error("board: set_race");
  }
  const std::uint8_t v = kind ? static_cast<std::uint8_t>(*kind) + 1 : 0;
  // relaxed: one byte, read on its own; its timing is what matters, not its order.
  race_slot(observer, subject)->store(v, std::memory_order_relaxed);
}

std::optional<ChangeKind> Board::race(VmId observer, VmId subject) const {
  if (observer == 0 || observer > vms_ || subject == 0 || subject > vms_) return std::nullopt;
  // relaxed: one byte read on its own (see set_race).
  const std::uint8_t v = race_slot(observer, subject)->load(std::memory_order_relaxed);
  if (v == 0 || v > 4) return std::nullopt;
  return static_cast<ChangeKind>(v - 1);
}

} // namespace ivmc::host
