// A simulated channel's memory (pipe.hpp): a private anonymous mapping whose ring pages are
// resident only where records were written.
#include "pipe.hpp"

#include "ivmc/core/wire.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <stdexcept>

namespace ivmc::sim {

ChannelMemory::ChannelMemory(std::size_t bytes) : size_(bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  data_ = static_cast<std::byte*>(p); // page-aligned, hence 64-byte aligned as a channel needs
}

ChannelMemory::~ChannelMemory() {
  ::munmap(data_, size_);
}

void ChannelMemory::release_rings() {
  // The layout as the creator wrote it (wire.hpp, line 0), in our own memory: checked anyway.
  wire::Identity id;
  std::memcpy(&id, data_, sizeof id);
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  for (int d = 0; d < 2; ++d) {
    const std::uint64_t from = (id.ring_offset[d] + page - 1) / page * page;
    const std::uint64_t to = (id.ring_offset[d] + id.ring_bytes[d]) / page * page;
    if (id.ring_offset[d] < sizeof(wire::ControlArea) || to > size_) {
      throw std::logic_error("sim: a channel's ring lies outside its area");
    }
    // MADV_DONTNEED on a private anonymous mapping: the pages read as zero again, which is
    // what create() wrote there.
    if (from < to) (void)::madvise(data_ + from, to - from, MADV_DONTNEED);
  }
}

} // namespace ivmc::sim
