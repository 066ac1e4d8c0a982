// CRC32C with the SSE4.2 crc32 instruction where the CPU has it, a table otherwise.
//
// Why not a library: Debian packages no C or C++ CRC32C library (`apt-cache search crc32c`
// finds only a Python module). Intel's ISA-L (libisal-dev) has one (crc32_iscsi), but Debian
// ships it as a shared library only, and the core is linked statically into the guest agents
// (ivmc-guest, ivmc-xen-agent: an initramfs without libraries). The instruction is one line per
// 8 bytes; the fallback is the textbook byte-wise table (Sarwate), built at compile time.
#include "ivmc/core/crc32c.hpp"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ivmc {
namespace {

constexpr std::uint32_t kPolyReflected = 0x82f63b78u; // 0x1EDC6F41 bit-reversed

constexpr std::array<std::uint32_t, 256> make_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPolyReflected : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kTable = make_table();

std::uint32_t update_table(std::uint32_t state, const unsigned char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) state = (state >> 8) ^ kTable[(state ^ p[i]) & 0xffu];
  return state;
}

#if defined(__x86_64__)
[[gnu::target("sse4.2")]] std::uint32_t update_sse42(std::uint32_t state, const unsigned char* p,
                                                     std::size_t n) {
  std::uint64_t s = state;
  for (; n >= 8; n -= 8, p += 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8); // unaligned-safe load
    s = _mm_crc32_u64(s, word);
  }
  auto s32 = static_cast<std::uint32_t>(s);
  for (; n > 0; --n, ++p) s32 = _mm_crc32_u8(s32, *p);
  return s32;
}
const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
#endif

} // namespace

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  const std::uint32_t state = ~crc; // the register runs inverted; the result is inverted back
#if defined(__x86_64__)
  if (kHaveSse42) return ~update_sse42(state, p, n);
#endif
  return ~update_table(state, p, n);
}

} // namespace ivmc
