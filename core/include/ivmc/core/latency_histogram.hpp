// Latency percentiles in bounded memory: a log-bucketed histogram of nanosecond values whose
// percentiles are within kRelativeError (1/256, 0.39 %) of the exact ones, whatever the number
// of values recorded (docs/results.md, "Latency percentiles").
//
// No Debian package offers one for C++ (bookworm packages HdrHistogram for Java and Go and
// t-digest for PostgreSQL only), and this one is small: the same bucket layout as an HDR
// histogram with 7 sub-bucket bits, integers only on the recording path.
//
// Layout: values below 256 ns have a bucket each (exact). Above, each power of two [2^m,
// 2^(m+1)) is cut into 128 equal buckets, so a bucket [lo, lo + w) has w <= lo / 128 and its
// midpoint is within w / 2 <= lo / 256 of every value in it. Only the buckets between the
// smallest and the largest value seen are stored (a run's latencies span a few decades: a few
// kB per histogram); at most 7,424 buckets cover every int64 value.
#pragma once

#include "ivmc/core/platform.hpp"

#include <cstdint>
#include <vector>

namespace ivmc {

class LatencyHistogram {
public:
  static constexpr int kSubBucketBits = 7;
  // Every percentile() is within this fraction of the exact value (linear interpolation between
  // the closest ranks of the recorded values, as in numpy's default).
  static constexpr double kRelativeError = 1.0 / (2 << kSubBucketBits);

  // One value; a negative one counts as 0.
  void record(Nanos value);
  // Adds every value of `other`, as if each had been recorded here.
  void merge(const LatencyHistogram& other);

  std::uint64_t count() const { return count_; }
  bool empty() const { return count_ == 0; }
  Nanos min() const { return min_; } // exact; 0 when empty
  Nanos max() const { return max_; } // exact
  // The p-th percentile (0 <= p <= 100) in nanoseconds: the value at rank p / 100 * (count - 1)
  // of the sorted values, interpolating between its two neighbouring ranks. NaN when empty.
  double percentile(double p) const;
  // Buckets held (memory is this times 8 bytes, plus the object).
  std::size_t buckets() const { return counts_.size(); }

  // The bucket layout, exposed for tests.
  static std::uint32_t bucket_of(std::uint64_t value);
  static std::uint64_t bucket_low(std::uint32_t bucket);   // smallest value in the bucket
  static std::uint64_t bucket_width(std::uint32_t bucket); // number of values in it

private:
  double order_statistic(std::uint64_t rank) const; // the rank-th smallest value (from 0)

  std::vector<std::uint64_t> counts_; // counts_[i] counts bucket first_ + i
  std::uint32_t first_ = 0;
  std::uint64_t count_ = 0;
  Nanos min_ = 0, max_ = 0;
};

} // namespace ivmc
