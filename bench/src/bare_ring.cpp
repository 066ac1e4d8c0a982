#include "bare_ring.hpp"

#include "harness.hpp"

#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace ivmc::bench {
namespace {

constexpr std::size_t kLine = 64;
constexpr std::size_t kRecord = 8 + BareRing::kPayload; // header + payload, as the channel's

std::atomic_ref<std::uint64_t> word(std::byte* at) {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(at));
}

inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause(); // one PAUSE per poll, as the channel's polling loop
#endif
}

} // namespace

BareRing::BareRing(std::size_t ring_bytes) : ring_bytes_(ring_bytes) {
  if (ring_bytes < 4 * kLine || ring_bytes % kLine != 0) {
    throw std::invalid_argument("bare ring: size must be a multiple of 64, at least 256");
  }
  void* p = mmap(nullptr, 2 * ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
                 0); // zero-filled: every header place starts as a terminator
  if (p == MAP_FAILED) throw std::runtime_error(std::string("bare ring mmap: ") + strerror(errno));
  base_ = static_cast<std::byte*>(p);
}

BareRing::~BareRing() {
  munmap(base_, 2 * ring_bytes_);
}

// The next record's place: right after this one, or the ring's start when a record and the
// terminator after it would not fit before the end (both sides apply the same rule, so no pad
// record is needed; the channel wraps a record's bytes instead, once a lap).
std::size_t BareRing::next(std::size_t offset) const {
  const std::size_t n = offset + kRecord;
  return n + kRecord + 8 > ring_bytes_ ? 0 : n;
}

void BareRing::send(int ring, Cursor& at, const std::byte* payload) {
  std::byte* r = base_ + static_cast<std::size_t>(ring) * ring_bytes_;
  std::byte* header = r + at.offset;
  const std::size_t line_end = (at.offset / kLine + 1) * kLine;
  const std::size_t in_line = line_end - (at.offset + 8); // payload bytes in the header's line
  const std::size_t after = next(at.offset);
  word(r + after).store(0, std::memory_order_relaxed); // terminator; the header's release
                                                       // below publishes it first
  std::memcpy(header + 8 + in_line, payload + in_line, kPayload - in_line);
  std::memcpy(header + 8, payload, in_line);
  ++at.count;
  // release: the terminator and the payload are visible before the header that announces them
  word(header).store(at.count << 32 | kPayload, std::memory_order_release);
  at.offset = after;
}

void BareRing::recv(int ring, Cursor& at, std::byte* payload) {
  std::byte* r = base_ + static_cast<std::size_t>(ring) * ring_bytes_;
  std::byte* header = r + at.offset;
  const std::size_t line_end = (at.offset / kLine + 1) * kLine;
  std::byte* touch = r + (line_end < ring_bytes_ ? line_end : 0);
  // acquire: a non-zero header makes the payload its producer stored before it visible
  while (word(header).load(std::memory_order_acquire) == 0) {
    // relaxed: only brings the record's second line here early; the value is not used
    (void)word(touch).load(std::memory_order_relaxed);
    cpu_relax();
  }
  std::memcpy(payload, header + 8, kPayload);
  ++at.count;
  at.offset = next(at.offset);
}

std::vector<double> BareRing::parent_round(int iterations) {
  TscTimer timer;
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(iterations));
  std::byte msg[kPayload], echo[kPayload];
  std::memset(msg, 1, kPayload);
  std::uint64_t wrong = 0;
  for (int i = 0; i < iterations; ++i) {
    const std::uint64_t seq = parent_tx_.count + 1;
    std::memcpy(msg, &seq, sizeof seq); // each message differs from the last
    const std::uint64_t t0 = TscTimer::read();
    send(0, parent_tx_, msg);
    recv(1, parent_rx_, echo);
    samples.push_back(timer.to_ns(TscTimer::read() - t0));
    wrong += std::memcmp(echo, msg, kPayload) != 0;
  }
  if (wrong != 0) {
    throw std::runtime_error("bare ring: " + std::to_string(wrong) +
                             " echoes differ from the message");
  }
  return samples;
}

void BareRing::child_round(int iterations) {
  std::byte buf[kPayload];
  for (int i = 0; i < iterations; ++i) {
    recv(0, child_rx_, buf);
    send(1, child_tx_, buf);
  }
}

} // namespace ivmc::bench
