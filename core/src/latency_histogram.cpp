// The log-bucketed latency histogram: see include/ivmc/core/latency_histogram.hpp.
#include "ivmc/core/latency_histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace ivmc {

namespace {
constexpr std::uint64_t kSub = std::uint64_t{1} << LatencyHistogram::kSubBucketBits; // 128
} // namespace

std::uint32_t LatencyHistogram::bucket_of(std::uint64_t value) {
  if (value < 2 * kSub) return static_cast<std::uint32_t>(value); // exact below 256
  const int shift = std::bit_width(value) - 1 - kSubBucketBits;   // >= 1
  const std::uint64_t sub = value >> shift;                       // in [128, 256)
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(shift) + 1) * kSub + sub - kSub);
}

std::uint64_t LatencyHistogram::bucket_low(std::uint32_t bucket) {
  if (bucket < 2 * kSub) return bucket;
  const std::uint64_t shift = bucket / kSub - 1;
  const std::uint64_t sub = bucket % kSub + kSub;
  return sub << shift;
}

std::uint64_t LatencyHistogram::bucket_width(std::uint32_t bucket) {
  if (bucket < 2 * kSub) return 1;
  return std::uint64_t{1} << (bucket / kSub - 1);
}

void LatencyHistogram::record(Nanos value) {
  value = std::max<Nanos>(value, 0);
  const std::uint32_t b = bucket_of(static_cast<std::uint64_t>(value));
  if (counts_.empty()) {
    first_ = b;
    counts_.assign(1, 0);
    min_ = max_ = value;
  } else if (b < first_) {
    counts_.insert(counts_.begin(), first_ - b, 0);
    first_ = b;
  } else if (b - first_ >= counts_.size()) {
    counts_.resize(b - first_ + 1, 0);
  }
  ++counts_[b - first_];
  ++count_;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  if (other.empty()) return;
  if (empty()) {
    *this = other;
    return;
  }
  const std::uint32_t first = std::min(first_, other.first_);
  const std::uint32_t last =
      std::max(first_ + static_cast<std::uint32_t>(counts_.size()),
               other.first_ + static_cast<std::uint32_t>(other.counts_.size()));
  std::vector<std::uint64_t> merged(last - first, 0);
  for (std::size_t i = 0; i < counts_.size(); ++i) merged[first_ - first + i] += counts_[i];
  for (std::size_t i = 0; i < other.counts_.size(); ++i) {
    merged[other.first_ - first + i] += other.counts_[i];
  }
  counts_ = std::move(merged);
  first_ = first;
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

double LatencyHistogram::order_statistic(std::uint64_t rank) const {
  // The extremes are kept exactly; any other value is its bucket's midpoint, clamped to what
  // was seen (which only brings it closer).
  if (rank == 0) return static_cast<double>(min_);
  if (rank + 1 >= count_) return static_cast<double>(max_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen > rank) {
      const auto b = static_cast<std::uint32_t>(first_ + i);
      const double low = static_cast<double>(bucket_low(b));
      const double mid = low + static_cast<double>(bucket_width(b) - 1) / 2;
      return std::clamp(mid, static_cast<double>(min_), static_cast<double>(max_));
    }
  }
  return static_cast<double>(max_);
}

double LatencyHistogram::percentile(double p) const {
  if (count_ == 0) return std::numeric_limits<double>::quiet_NaN();
  const double rank = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(count_ - 1);
  const auto lo = static_cast<std::uint64_t>(rank);
  const std::uint64_t hi = std::min(lo + 1, count_ - 1);
  const double a = order_statistic(lo);
  if (hi == lo) return a;
  // Both neighbours are within the bound and non-negative, so their interpolation is too.
  return a + (order_statistic(hi) - a) * (rank - static_cast<double>(lo));
}

} // namespace ivmc
