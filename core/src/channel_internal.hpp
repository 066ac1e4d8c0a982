// What the channel's setup (channel_setup.cpp) and its data path (channel.cpp) share
// (internal): the area's first page, ring copies that wrap, shared-field access.
#pragma once

#include "ivmc/core/channel.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>

namespace ivmc::channel_detail {

using wire::ControlArea;
using wire::EndpointState;

inline constexpr std::uint64_t kControlPage =
    4096; // rings start on their own pages (Xen grants pages)

// Single-writer counter increment: a plain load and store, no locked instruction. Relaxed:
// readers only need an eventually current value; nothing is ordered by a counter.
inline void bump(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) {
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

template <class T>
inline std::atomic_ref<T> shared(T& field) {
  return std::atomic_ref<T>(field);
}

inline std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

inline bool is_pow2_in_range(std::uint64_t v) {
  return std::has_single_bit(v) && v >= wire::kMinRingBytes && v <= wire::kMaxRingBytes;
}

// The ring copies are forced inline (always_inline), as are the record steps that send/recv
// share with reserve/commit and peek/release (channel.cpp): the hot path stays one function
// with the copies in it, as it was before those calls shared its parts (GCC otherwise
// outlines them).

// Unaligned loads and stores of a word or a 16-byte vector, kept in registers.
using Bytes16 = unsigned char __attribute__((vector_size(16)));
template <class T>
[[gnu::always_inline]] inline T load_at(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
[[gnu::always_inline]] inline void store_at(std::byte* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

// Two moves of a T each, the first and the last sizeof(T) bytes of n (sizeof(T) <= n <=
// 2 sizeof(T)): they overlap when n is less than twice the size.
template <class T>
[[gnu::always_inline]] inline void move_ends(std::byte* dst, const std::byte* src,
                                             std::uint64_t n) {
  const T a = load_at<T>(src), b = load_at<T>(src + n - sizeof(T)); // both loaded, then stored
  store_at(dst, a);
  store_at(dst + n - sizeof(T), b);
}

// Copies n > 0 bytes between the ring and a caller's buffer (never overlapping). Up to 64
// bytes, two fixed-size moves, inline: a call to the C library's memcpy costs more than the
// copy itself at these sizes, and small records are the latency path (issue 18's round trip).
// Larger copies go to memcpy.
[[gnu::always_inline]] inline void move_bytes(std::byte* dst, const std::byte* src,
                                              std::uint64_t n) {
  if (n > 64) {
    std::memcpy(dst, src, n);
  } else if (n >= 32) { // the first 32 and the last 32 bytes
    const Bytes16 a0 = load_at<Bytes16>(src), a1 = load_at<Bytes16>(src + 16);
    const Bytes16 b0 = load_at<Bytes16>(src + n - 32), b1 = load_at<Bytes16>(src + n - 16);
    store_at(dst, a0);
    store_at(dst + 16, a1);
    store_at(dst + n - 32, b0);
    store_at(dst + n - 16, b1);
  } else if (n >= 16) {
    move_ends<Bytes16>(dst, src, n);
  } else if (n >= 8) {
    move_ends<std::uint64_t>(dst, src, n);
  } else if (n >= 4) {
    move_ends<std::uint32_t>(dst, src, n);
  } else {
    dst[0] = src[0];
    dst[n / 2] = src[n / 2];
    dst[n - 1] = src[n - 1];
  }
}

// Copies n bytes into the ring at position p, wrapping at its end. An empty copy touches
// nothing (an empty span may carry a null pointer, which memcpy must not see).
[[gnu::always_inline]] inline void copy_in(std::byte* ring, std::uint64_t size, std::uint64_t p,
                                           const std::byte* src, std::uint64_t n) {
  if (n == 0) return;
  const std::uint64_t off = p & (size - 1), first = std::min(n, size - off);
  move_bytes(ring + off, src, first);
  if (first != n) [[unlikely]]
    std::memcpy(ring, src + first, n - first); // wrapped
}

// Copies bytes [from, to) of the message head + body into the ring, whose payload starts at
// position `payload`.
[[gnu::always_inline]] inline void copy_in_range(std::byte* ring, std::uint64_t size,
                                                 std::uint64_t payload,
                                                 std::span<const std::byte> head,
                                                 std::span<const std::byte> body,
                                                 std::uint64_t from, std::uint64_t to) {
  const std::uint64_t h = head.size();
  if (from < h) {
    copy_in(ring, size, payload + from, head.data() + from, std::min(to, h) - from);
  }
  if (to > h) {
    const std::uint64_t b = std::max(from, h) - h; // first body byte to copy
    copy_in(ring, size, payload + h + b, body.data() + b, to - h - b);
  }
}

[[gnu::always_inline]] inline void copy_out(const std::byte* ring, std::uint64_t size,
                                            std::uint64_t p, std::byte* dst, std::uint64_t n) {
  if (n == 0) return;
  const std::uint64_t off = p & (size - 1), first = std::min(n, size - off);
  move_bytes(dst, ring + off, first);
  if (first != n) [[unlikely]]
    std::memcpy(dst + first, ring, n - first); // wrapped
}

inline Nanos saturating_add(Nanos a, Nanos b) {
  return (b > 0 && a > kForever - b) ? kForever : a + b;
}

} // namespace ivmc::channel_detail
