// The bounded-memory latency histogram against exact percentiles (sorted samples, linear
// interpolation between ranks, as the simulator computed them before): every percentile within
// the documented relative error, on random data from fixed seeds, with extreme values, and
// after merging two histograms.
#include "ivmc/core/latency_histogram.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

using namespace ivmc;

namespace {

double exact_percentile(std::vector<Nanos> v, double p) {
  std::sort(v.begin(), v.end());
  const double rank = p / 100.0 * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(rank);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  const auto a = static_cast<double>(v[lo]), b = static_cast<double>(v[hi]);
  return a + (b - a) * (rank - static_cast<double>(lo));
}

const std::vector<double> kPercentiles = {0, 0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};

// Every percentile of `h` is within the bound of the exact one over `values`.
void check_bound(const LatencyHistogram& h, const std::vector<Nanos>& values) {
  REQUIRE(h.count() == values.size());
  for (double p : kPercentiles) {
    const double exact = exact_percentile(values, p);
    const double got = h.percentile(p);
    INFO("p" << p << ": exact " << exact << ", histogram " << got);
    // A relative bound, plus a few ulps for the doubles in the interpolation.
    CHECK(std::abs(got - exact) <= LatencyHistogram::kRelativeError * exact + 1e-9 * exact);
  }
}

// Log-uniform values over `decades` decades from 1 ns: every bucket size is exercised.
std::vector<Nanos> log_uniform(std::mt19937_64& rng, std::size_t n, double decades) {
  std::uniform_real_distribution<double> u(0, decades);
  std::vector<Nanos> v(n);
  for (auto& x : v) x = static_cast<Nanos>(std::pow(10.0, u(rng)));
  return v;
}

} // namespace

TEST_CASE("latency histogram: the bucket layout covers every value, gaplessly", "[histogram]") {
  // Exact below 256; above, each bucket starts where the previous one ended, and its width is
  // at most 1/128 of its lowest value (which is what makes the bound).
  for (std::uint64_t v = 0; v < 256; ++v) CHECK(LatencyHistogram::bucket_of(v) == v);
  const std::uint32_t last = LatencyHistogram::bucket_of(std::numeric_limits<std::uint64_t>::max());
  for (std::uint32_t b = 0; b < last; ++b) {
    const std::uint64_t low = LatencyHistogram::bucket_low(b);
    const std::uint64_t width = LatencyHistogram::bucket_width(b);
    REQUIRE(LatencyHistogram::bucket_of(low) == b);
    REQUIRE(LatencyHistogram::bucket_of(low + width - 1) == b);
    REQUIRE(LatencyHistogram::bucket_low(b + 1) == low + width);
    if (b >= 256) REQUIRE(width * 128 <= low);
  }
  CHECK(last + 1 == 7424); // the whole uint64 range in 7,424 buckets
  CHECK(LatencyHistogram::kRelativeError == 1.0 / 256);
}

TEST_CASE("latency histogram: random data within the bound (fixed seeds)", "[histogram]") {
  for (std::uint64_t seed : {1u, 2u, 3u, 42u}) {
    std::mt19937_64 rng(seed);
    INFO("seed " << seed);
    SECTION("log-uniform over 12 decades") {
      const auto values = log_uniform(rng, 100'000, 12);
      LatencyHistogram h;
      for (Nanos v : values) h.record(v);
      check_bound(h, values);
    }
    SECTION("a microsecond-scale latency distribution (lognormal)") {
      std::lognormal_distribution<double> d(std::log(20'000.0), 0.8);
      std::vector<Nanos> values(50'000);
      for (auto& x : values) x = static_cast<Nanos>(d(rng));
      LatencyHistogram h;
      for (Nanos v : values) h.record(v);
      check_bound(h, values);
    }
    SECTION("few values: the interpolation between ranks is kept") {
      std::uniform_int_distribution<Nanos> d(1, 10'000'000);
      for (std::size_t n : {1u, 2u, 3u, 7u, 10u}) {
        std::vector<Nanos> values(n);
        for (auto& x : values) x = d(rng);
        LatencyHistogram h;
        for (Nanos v : values) h.record(v);
        check_bound(h, values);
      }
    }
  }
}

TEST_CASE("latency histogram: extreme values", "[histogram]") {
  const Nanos big = std::numeric_limits<Nanos>::max();
  std::vector<Nanos> values = {0, 0, 1, 255, 256, 257, 1'000'000, big - 1, big};
  LatencyHistogram h;
  for (Nanos v : values) h.record(v);
  check_bound(h, values);
  CHECK(h.min() == 0);
  CHECK(h.max() == big);
  CHECK(h.percentile(0) == 0);
  CHECK(h.percentile(100) == static_cast<double>(big));
  CHECK(h.buckets() <= 7424);

  LatencyHistogram neg; // a negative latency (a clock that stepped back) counts as 0
  neg.record(-5);
  CHECK(neg.count() == 1);
  CHECK(neg.percentile(50) == 0);

  LatencyHistogram none;
  CHECK(std::isnan(none.percentile(50)));

  LatencyHistogram same; // one value many times: exact
  for (int i = 0; i < 1000; ++i) same.record(123'456'789);
  for (double p : kPercentiles) CHECK(same.percentile(p) == 123'456'789.0);
}

TEST_CASE("latency histogram: memory does not grow with the number of values", "[histogram]") {
  // Latencies between 1 us and 10 ms: the buckets are those of that range, however many values.
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(3, 7);
  const std::size_t range =
      LatencyHistogram::bucket_of(10'000'000) - LatencyHistogram::bucket_of(1'000) + 1;
  LatencyHistogram h;
  for (int i = 0; i < 100'000; ++i) h.record(static_cast<Nanos>(std::pow(10.0, u(rng))));
  CHECK(h.buckets() <= range);
  for (int i = 0; i < 2'000'000; ++i) h.record(static_cast<Nanos>(std::pow(10.0, u(rng))));
  CHECK(h.count() == 2'100'000);
  CHECK(h.buckets() <= range);
  CHECK(range < 2'000); // 13.3 octaves of 128 buckets: under 16 kB of counts
  // Exactly the buckets between the smallest and the largest value.
  CHECK(h.buckets() == LatencyHistogram::bucket_of(static_cast<std::uint64_t>(h.max())) -
                           LatencyHistogram::bucket_of(static_cast<std::uint64_t>(h.min())) + 1);
}

TEST_CASE("latency histogram: merging two equals recording both", "[histogram]") {
  std::mt19937_64 rng(11);
  const auto a = log_uniform(rng, 30'000, 6); // 1 ns .. 1 ms
  std::vector<Nanos> b = log_uniform(rng, 20'000, 3);
  for (auto& x : b) x *= 100'000; // 100 us .. 100 ms: overlapping, and beyond a's range
  LatencyHistogram ha, hb, both;
  for (Nanos v : a) ha.record(v), both.record(v);
  for (Nanos v : b) hb.record(v), both.record(v);
  LatencyHistogram merged = hb; // merge into the one with the higher range
  merged.merge(ha);
  std::vector<Nanos> all = a;
  all.insert(all.end(), b.begin(), b.end());
  check_bound(merged, all);
  for (double p : kPercentiles) CHECK(merged.percentile(p) == both.percentile(p));
  LatencyHistogram empty;
  empty.merge(ha);
  for (double p : kPercentiles) CHECK(empty.percentile(p) == ha.percentile(p));
  ha.merge(LatencyHistogram{});
  check_bound(ha, a);
}
