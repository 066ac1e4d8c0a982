// A host-wide shared-memory pool sliced into fixed-size chunks, shared among the host's
// communicating VM pairs, with the two allocation policies of the surveyed systems:
//
//   static_equal  XenLoop, XenVMC: each pair gets a fixed, equal share (pool / max_pairs) when
//                 its channel is set up; nothing ever moves. A pair beyond max_pairs is refused
//                 (it stays on the remote path).
//   proportional  MemPipe: chunks follow each pair's observed demand, re-balanced at runtime
//                 (grow and shrink), with a minimum per pair and hysteresis against thrashing.
//
// A pair's ring is the largest power of two not above its allocation (the channel's rings are
// powers of two). The proportional policy therefore only ever gives a pair a power-of-two
// number of chunks, so nothing it is given is wasted; static_equal gives exactly
// pool / max_pairs and the rest of each share is unusable (that is part of its cost).
//
// The pool counts chunks; where they sit (contiguity, mapping) is the platform's business.
// Single-threaded: the platform serialises calls.
#pragma once

#include "ivmc/core/membership.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <vector>

namespace ivmc {

// A communicating pair, named independently of the order of its two VMs.
using PairId = std::uint64_t;
constexpr PairId pair_id(VmId a, VmId b) {
  return a < b ? (PairId(a) << 32) | b : (PairId(b) << 32) | a;
}

enum class PoolPolicy : std::uint8_t { static_equal, proportional };
std::string_view to_string(PoolPolicy p);
// "static_equal" / "static", "proportional"; nothing if unknown.
std::optional<PoolPolicy> parse_pool_policy(std::string_view text);

struct PoolConfig {
  std::uint64_t pool_bytes = 64ull << 20; // usable: a whole number of chunks
  std::uint32_t chunk_bytes = 64u << 10;  // a power of two
  PoolPolicy policy = PoolPolicy::proportional;
  std::uint32_t max_pairs = 16; // static_equal: the pool is split into this many shares (<= chunks)
  std::uint32_t min_chunks = 1; // proportional: the floor per pair, a power of two
  // proportional hysteresis: a pair above its computed target keeps its allocation while it
  // still uses more than `shrink_below` of it, or while its fair share is at least
  // (1 - share_slack) of it; kept pairs give way (lowest share first) only if the pool is short.
  double shrink_below = 0.25;
  double share_slack = 0.25;
  // Weight of a new report in the demand estimate (EWMA); 1 = the latest report only.
  double demand_weight = 0.5;
};

// One resize to carry out: the pair's ring goes from old_chunks to new_chunks.
struct PoolResize {
  PairId pair = 0;
  std::uint32_t old_chunks = 0;
  std::uint32_t new_chunks = 0;
};

class SharedPool {
public:
  explicit SharedPool(PoolConfig config); // throws std::invalid_argument for a bad config
  const PoolConfig& config() const { return config_; }
  std::uint32_t total_chunks() const { return total_; }
  std::uint32_t free_chunks() const { return total_ - allocated_; }
  std::uint64_t pool_bytes() const { return std::uint64_t(total_) * config_.chunk_bytes; }
  std::size_t pair_count() const { return pairs_.size(); }

  // A channel came up. False: refused, no room (static: max_pairs shares all taken;
  // proportional: pairs x min_chunks would exceed the pool); the pair should use the remote
  // path. True: added; under proportional it may hold 0 chunks until the next rebalance makes
  // room (when fewer than min_chunks are free). Throws std::invalid_argument if already there.
  [[nodiscard]] bool add_pair(PairId pair, Nanos now);
  // The channel went away: its chunks are free (others grow at the next rebalance). Throws
  // std::invalid_argument for an unknown pair.
  void remove_pair(PairId pair, Nanos now);
  bool has_pair(PairId pair) const { return pairs_.count(pair) != 0; }

  // The bytes of data the pair wants to keep in flight (e.g. its ring's high-water mark, or
  // bytes queued, over the last window). Throws std::invalid_argument for an unknown pair.
  void report_demand(PairId pair, std::uint64_t bytes, Nanos now);
  // Proportional: recomputes the allocations and returns the resizes to carry out, in order
  // (every shrink before any grow, so the chunks a grow needs are free by then). The pool
  // already counts the new sizes. Static: never resizes (empty).
  std::vector<PoolResize> rebalance(Nanos now);

  std::uint32_t allocation(PairId pair) const; // chunks (0 for an unknown pair)
  std::uint64_t allocation_bytes(PairId pair) const;
  std::uint64_t ring_bytes(PairId pair) const; // largest power of two <= allocation_bytes
  std::uint64_t demand(PairId pair) const;     // the smoothed estimate, bytes

  // Bytes holding data / pool bytes, where a pair holds min(its latest reported demand, its
  // ring bytes): how much of the pool carries data rather than sitting idle or unusable.
  double utilisation() const;
  // Chunks handed out / pool chunks.
  double allocated_fraction() const;

  static std::uint64_t floor_pow2(std::uint64_t x); // 0 for 0
  static std::uint64_t ceil_pow2(std::uint64_t x);  // 1 for 0

private:
  struct Pair {
    std::uint32_t chunks = 0;
    double demand = 0;             // smoothed, bytes
    std::uint64_t last_report = 0; // latest, bytes
    bool reported = false;
  };
  PoolConfig config_;
  std::uint32_t total_ = 0;
  std::uint32_t allocated_ = 0;
  std::map<PairId, Pair> pairs_; // ordered: deterministic rebalancing
};

} // namespace ivmc
