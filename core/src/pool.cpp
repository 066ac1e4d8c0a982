#include "ivmc/core/pool.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ivmc {

std::string_view to_string(PoolPolicy p) {
  switch (p) {
  case PoolPolicy::static_equal:
    return "static_equal";
  case PoolPolicy::proportional:
    return "proportional";
  }
  return "?";
}

std::optional<PoolPolicy> parse_pool_policy(std::string_view text) {
  if (text == "static_equal" || text == "static") return PoolPolicy::static_equal;
  if (text == "proportional") return PoolPolicy::proportional;
  return std::nullopt;
}

std::uint64_t SharedPool::floor_pow2(std::uint64_t x) {
  return std::bit_floor(x);
}
std::uint64_t SharedPool::ceil_pow2(std::uint64_t x) {
  return std::bit_ceil(x);
}

SharedPool::SharedPool(PoolConfig c) : config_(c) {
  auto bad = [](const std::string& what) { return std::invalid_argument("pool: " + what); };
  if (c.chunk_bytes < 64 || !std::has_single_bit(c.chunk_bytes))
    throw bad("chunk_bytes must be a power of two >= 64, got " + std::to_string(c.chunk_bytes));
  std::uint64_t chunks = c.pool_bytes / c.chunk_bytes;
  if (chunks == 0 || chunks > 0xFFFFFFFFull)
    throw bad("pool_bytes must hold 1 to 2^32-1 chunks, got " + std::to_string(chunks));
  total_ = static_cast<std::uint32_t>(chunks);
  if (c.policy == PoolPolicy::static_equal && (c.max_pairs == 0 || c.max_pairs > total_))
    throw bad("max_pairs must be in [1, chunks=" + std::to_string(total_) + "], got " +
              std::to_string(c.max_pairs));
  if (c.min_chunks == 0 || !std::has_single_bit(c.min_chunks) || c.min_chunks > total_)
    throw bad("min_chunks must be a power of two in [1, chunks], got " +
              std::to_string(c.min_chunks));
  if (!(c.shrink_below >= 0 && c.shrink_below <= 1)) throw bad("shrink_below must be in [0, 1]");
  if (!(c.share_slack >= 0 && c.share_slack < 1)) throw bad("share_slack must be in [0, 1)");
  if (!(c.demand_weight > 0 && c.demand_weight <= 1)) throw bad("demand_weight must be in (0, 1]");
}

bool SharedPool::add_pair(PairId pair, Nanos) {
  if (pairs_.count(pair))
    throw std::invalid_argument("pool: pair " + std::to_string(pair) + " is already added");
  std::uint32_t grant = 0;
  if (config_.policy == PoolPolicy::static_equal) {
    std::uint32_t share = total_ / config_.max_pairs;
    if (pairs_.size() >= config_.max_pairs || free_chunks() < share) return false;
    grant = share;
  } else {
    // Admit only while every pair can still get its minimum; take it now if it is free,
    // else the next rebalance shrinks others to make room.
    if (std::uint64_t(pairs_.size() + 1) * config_.min_chunks > total_) return false;
    grant = free_chunks() >= config_.min_chunks ? config_.min_chunks : 0;
  }
  pairs_[pair].chunks = grant;
  allocated_ += grant;
  return true;
}

void SharedPool::remove_pair(PairId pair, Nanos) {
  auto it = pairs_.find(pair);
  if (it == pairs_.end())
    throw std::invalid_argument("pool: remove_pair: unknown pair " + std::to_string(pair));
  allocated_ -= it->second.chunks;
  pairs_.erase(it);
}

void SharedPool::report_demand(PairId pair, std::uint64_t bytes, Nanos) {
  auto it = pairs_.find(pair);
  if (it == pairs_.end())
    throw std::invalid_argument("pool: report_demand: unknown pair " + std::to_string(pair));
  Pair& p = it->second;
  double w = config_.demand_weight;
  p.demand =
      p.reported ? w * static_cast<double>(bytes) + (1 - w) * p.demand : static_cast<double>(bytes);
  p.reported = true;
  p.last_report = bytes;
}

std::vector<PoolResize> SharedPool::rebalance(Nanos) {
  if (config_.policy == PoolPolicy::static_equal || pairs_.empty()) return {};

  struct Plan {
    PairId id;
    Pair* pair;
    std::uint64_t need; // chunks: a ring holding the demand, within [min, largest pow2 <= pool]
    double share;       // fair share: min + demand-proportional part of the rest, <= need
    std::uint64_t target;
    bool kept = false;
  };
  const std::uint64_t min = config_.min_chunks;
  const std::uint64_t cap = floor_pow2(total_);
  const double chunk = config_.chunk_bytes;
  std::vector<Plan> plan;
  plan.reserve(pairs_.size());
  for (auto& [id, p] : pairs_) {
    auto chunks = static_cast<std::uint64_t>(std::ceil(p.demand / chunk));
    plan.push_back({id, &p, std::clamp(ceil_pow2(chunks), min, cap), 0, 0});
  }

  // Fair shares: everybody's minimum, then the rest in proportion to demand, water-filled so no
  // pair gets more than it needs (what a capped pair does not take goes to the others).
  double rest = static_cast<double>(total_) - static_cast<double>(min * plan.size());
  std::vector<Plan*> open;
  for (auto& p : plan) {
    p.share = static_cast<double>(min);
    if (p.need > min) open.push_back(&p);
  }
  while (!open.empty() && rest > 0) {
    double demand = 0;
    for (auto* p : open) demand += p->pair->demand;
    bool capped = false;
    for (auto it = open.begin(); it != open.end();) {
      double room = static_cast<double>((*it)->need - min);
      if (rest * (*it)->pair->demand / demand >= room) {
        (*it)->share = static_cast<double>((*it)->need);
        rest -= room;
        it = open.erase(it);
        capped = true;
      } else {
        ++it;
      }
    }
    if (capped) continue;
    for (auto* p : open) p->share = static_cast<double>(min) + rest * p->pair->demand / demand;
    break;
  }

  // Targets: the share rounded down to a power of two (the ring), never below the minimum.
  std::uint64_t sum = 0;
  for (auto& p : plan) {
    p.target = std::max(min, floor_pow2(static_cast<std::uint64_t>(p.share)));
    sum += p.target;
  }
  // Hysteresis: a pair keeps a larger allocation while it still uses it or is still nearly
  // entitled to it; the least entitled give way first if the pool is short.
  for (auto& p : plan) {
    std::uint64_t a = p.pair->chunks;
    if (a <= p.target) continue;
    bool used = p.pair->demand > config_.shrink_below * static_cast<double>(a) * chunk;
    bool entitled = p.share >= (1 - config_.share_slack) * static_cast<double>(a);
    if (used || entitled) {
      sum += a - p.target;
      p.target = a;
      p.kept = true;
    }
  }
  if (sum > total_) {
    std::vector<Plan*> kept;
    for (auto& p : plan)
      if (p.kept) kept.push_back(&p);
    std::stable_sort(kept.begin(), kept.end(), [](const Plan* x, const Plan* y) {
      return x->share / static_cast<double>(x->target) < y->share / static_cast<double>(y->target);
    });
    for (auto* p : kept) {
      if (sum <= total_) break;
      std::uint64_t t = std::max(min, floor_pow2(static_cast<std::uint64_t>(p->share)));
      sum -= p->target - t;
      p->target = t;
      p->kept = false;
    }
  }
  // Chunks left over by rounding: double the most under-served pairs that need it.
  for (;;) {
    Plan* best = nullptr;
    for (auto& p : plan) {
      if (p.target * 2 > p.need || sum + p.target > total_) continue;
      if (!best ||
          p.share - static_cast<double>(p.target) > best->share - static_cast<double>(best->target))
        best = &p;
    }
    if (!best) break;
    sum += best->target;
    best->target *= 2;
  }

  std::vector<PoolResize> shrinks, grows;
  for (auto& p : plan) {
    auto t = static_cast<std::uint32_t>(p.target);
    if (t == p.pair->chunks) continue;
    (t < p.pair->chunks ? shrinks : grows).push_back({p.id, p.pair->chunks, t});
    allocated_ = allocated_ - p.pair->chunks + t;
    p.pair->chunks = t;
  }
  shrinks.insert(shrinks.end(), grows.begin(), grows.end());
  return shrinks;
}

std::uint32_t SharedPool::allocation(PairId pair) const {
  auto it = pairs_.find(pair);
  return it == pairs_.end() ? 0 : it->second.chunks;
}

std::uint64_t SharedPool::allocation_bytes(PairId pair) const {
  return std::uint64_t(allocation(pair)) * config_.chunk_bytes;
}

std::uint64_t SharedPool::ring_bytes(PairId pair) const {
  return floor_pow2(allocation_bytes(pair));
}

std::uint64_t SharedPool::demand(PairId pair) const {
  auto it = pairs_.find(pair);
  return it == pairs_.end() ? 0 : static_cast<std::uint64_t>(std::llround(it->second.demand));
}

double SharedPool::utilisation() const {
  std::uint64_t in_use = 0;
  for (const auto& [id, p] : pairs_) in_use += std::min(p.last_report, ring_bytes(id));
  return static_cast<double>(in_use) / static_cast<double>(pool_bytes());
}

double SharedPool::allocated_fraction() const {
  return static_cast<double>(allocated_) / static_cast<double>(total_);
}

} // namespace ivmc
