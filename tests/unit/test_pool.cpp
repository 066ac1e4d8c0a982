// The host-wide shared-memory pool: XenLoop/XenVMC's fixed equal split against MemPipe's
// demand-proportional chunks, rings as powers of two, hysteresis, utilisation.
#include "ivmc/core/pool.hpp"

#include <catch2/catch.hpp>

#include <bit>
#include <map>
#include <stdexcept>
#include <vector>

using namespace ivmc;

namespace {

constexpr std::uint64_t KiB = 1024;
constexpr std::uint64_t MiB = 1024 * KiB;
constexpr std::uint64_t chunk = 64 * KiB;

PoolConfig config(PoolPolicy policy, std::uint64_t chunks) {
  PoolConfig c;
  c.policy = policy;
  c.pool_bytes = chunks * chunk;
  c.chunk_bytes = static_cast<std::uint32_t>(chunk);
  c.demand_weight = 1.0; // the latest report: keeps the arithmetic below exact
  return c;
}

std::vector<std::tuple<PairId, std::uint32_t, std::uint32_t>>
as_tuples(const std::vector<PoolResize>& resizes) {
  std::vector<std::tuple<PairId, std::uint32_t, std::uint32_t>> out;
  for (const auto& r : resizes) out.emplace_back(r.pair, r.old_chunks, r.new_chunks);
  return out;
}

} // namespace

TEST_CASE("pool: static_equal splits the pool equally and never moves", "[pool]") {
  auto c = config(PoolPolicy::static_equal, 48);
  c.max_pairs = 4;
  SharedPool pool(c);
  for (PairId p : {1, 2, 3, 4}) REQUIRE(pool.add_pair(p, 0));
  CHECK_FALSE(pool.add_pair(5, 0)); // every share taken: the pair stays on the remote path
  CHECK_FALSE(pool.has_pair(5));
  for (PairId p : {1, 2, 3, 4}) {
    CHECK(pool.allocation(p) == 12);
    CHECK(pool.allocation_bytes(p) == 12 * chunk);
  }
  CHECK(pool.free_chunks() == 0);

  pool.report_demand(1, 4 * MiB, 1);
  pool.report_demand(2, 0, 1);
  pool.report_demand(3, 100 * KiB, 1);
  CHECK(pool.rebalance(2).empty());
  for (PairId p : {1, 2, 3, 4}) CHECK(pool.allocation(p) == 12);

  pool.remove_pair(2, 3);
  CHECK(pool.free_chunks() == 12);
  CHECK(pool.rebalance(4).empty()); // nobody grows into the freed share
  REQUIRE(pool.add_pair(6, 5));
  CHECK(pool.allocation(6) == 12);
}

TEST_CASE("pool: proportional allocation follows demand", "[pool]") {
  SharedPool pool(config(PoolPolicy::proportional, 64));
  for (PairId p : {1, 2, 3}) REQUIRE(pool.add_pair(p, 0));
  for (PairId p : {1, 2, 3}) CHECK(pool.allocation(p) == 1); // the minimum, at once
  // Demands 96 : 32 : 0 chunks, more than the pool: shares 46.75 and 16.25 chunks, rounded down
  // to rings of 32 and 16; rounding leaves 15 chunks, too few to double either.
  pool.report_demand(1, 96 * chunk, 1);
  pool.report_demand(2, 32 * chunk, 1);
  auto r = pool.rebalance(2);
  CHECK(as_tuples(r) == decltype(as_tuples(r)){{1, 1, 32}, {2, 1, 16}});
  CHECK(pool.allocation(3) == 1);
  CHECK(pool.free_chunks() == 15);

  // Demand turns around: 1 shrinks (first, so 2 can grow into its chunks) and 2 grows.
  pool.report_demand(1, 32 * chunk, 3);
  pool.report_demand(2, 96 * chunk, 3);
  r = pool.rebalance(4);
  CHECK(as_tuples(r) == decltype(as_tuples(r)){{1, 32, 16}, {2, 16, 32}});
  CHECK(pool.rebalance(5).empty()); // nothing changed: nothing moves
}

TEST_CASE("pool: pairs grow and shrink with their demand, with hysteresis", "[pool]") {
  SharedPool pool(config(PoolPolicy::proportional, 64));
  REQUIRE(pool.add_pair(1, 0));
  REQUIRE(pool.add_pair(2, 0));
  pool.report_demand(1, 10 * chunk, 1); // a ring of 16 chunks holds it
  auto r = pool.rebalance(1);
  CHECK(as_tuples(r) == decltype(as_tuples(r)){{1, 1, 16}});
  CHECK(pool.allocation(2) == 1);  // no demand: the minimum
  CHECK(pool.free_chunks() == 47); // the rest stays free for newcomers

  pool.report_demand(1, 5 * chunk, 2); // still uses more than a quarter of its ring: kept
  CHECK(pool.rebalance(2).empty());
  pool.report_demand(1, 3 * chunk, 3); // uses less: shrinks to what it needs
  r = pool.rebalance(3);
  CHECK(as_tuples(r) == decltype(as_tuples(r)){{1, 16, 4}});
  pool.report_demand(1, 20 * chunk, 4);
  r = pool.rebalance(4);
  CHECK(as_tuples(r) == decltype(as_tuples(r)){{1, 4, 32}});
}

TEST_CASE("pool: hysteresis keeps a demand at a boundary from thrashing", "[pool]") {
  auto resizes_for = [](double shrink_below, double share_slack) {
    auto c = config(PoolPolicy::proportional, 64);
    c.shrink_below = shrink_below;
    c.share_slack = share_slack;
    SharedPool pool(c);
    REQUIRE(pool.add_pair(1, 0));
    std::size_t n = 0;
    for (int i = 0; i < 20; ++i) {
      pool.report_demand(1, (i % 2 ? 15 : 17) * chunk, i); // needs 32, 16, 32, 16...
      n += pool.rebalance(i).size();
    }
    return n;
  };
  CHECK(resizes_for(0.25, 0.25) == 1); // grows once, then holds
  CHECK(resizes_for(1.0, 0.0) == 20);  // without hysteresis: every round
}

TEST_CASE("pool: every pair keeps its minimum, a newcomer is made room for", "[pool]") {
  SharedPool pool(config(PoolPolicy::proportional, 8));
  REQUIRE(pool.add_pair(1, 0));
  pool.report_demand(1, 64 * chunk, 0);
  auto r = pool.rebalance(0);
  CHECK(as_tuples(r) == decltype(as_tuples(r)){{1, 1, 8}});
  CHECK(pool.free_chunks() == 0);

  REQUIRE(pool.add_pair(2, 1));
  CHECK(pool.allocation(2) == 0); // nothing free: waits for the rebalance
  r = pool.rebalance(1);
  CHECK(as_tuples(r) == decltype(as_tuples(r)){{1, 8, 4}, {2, 0, 1}});

  for (PairId p = 3; p <= 8; ++p) REQUIRE(pool.add_pair(p, 2));
  CHECK_FALSE(pool.add_pair(9, 2)); // 9 x 1 chunk would not fit in 8
  pool.rebalance(3);
  for (PairId p = 1; p <= 8; ++p) CHECK(pool.allocation(p) == 1);

  auto c = config(PoolPolicy::proportional, 64);
  c.min_chunks = 4;
  SharedPool big(c);
  REQUIRE(big.add_pair(1, 0));
  REQUIRE(big.add_pair(2, 0));
  big.report_demand(1, 200 * chunk, 0);
  big.rebalance(0);
  CHECK(big.allocation(2) == 4);
  CHECK(big.allocation(1) == 32);
}

TEST_CASE("pool: rings are powers of two", "[pool]") {
  auto s = config(PoolPolicy::static_equal, 48);
  s.max_pairs = 4;
  SharedPool equal(s);
  REQUIRE(equal.add_pair(1, 0));
  CHECK(equal.allocation_bytes(1) == 12 * chunk);
  CHECK(equal.ring_bytes(1) == 8 * chunk); // a third of the share is unusable
  CHECK(equal.ring_bytes(99) == 0);

  // Proportional only hands out powers of two: the ring is the whole allocation.
  SharedPool pool(config(PoolPolicy::proportional, 100));
  std::uint64_t x = 2463534242;
  for (PairId p = 1; p <= 5; ++p) REQUIRE(pool.add_pair(p, 0));
  for (int round = 0; round < 50; ++round) {
    for (PairId p = 1; p <= 5; ++p) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      pool.report_demand(p, x % (8 * MiB), round);
    }
    pool.rebalance(round);
    for (PairId p = 1; p <= 5; ++p) {
      CHECK(std::has_single_bit(pool.allocation(p)));
      CHECK(pool.ring_bytes(p) == pool.allocation_bytes(p));
    }
  }
  CHECK(SharedPool::floor_pow2(12) == 8);
  CHECK(SharedPool::ceil_pow2(12) == 16);
  CHECK(SharedPool::ceil_pow2(0) == 1);
}

TEST_CASE("pool: utilisation counts the bytes holding data", "[pool]") {
  // Skewed demand: 3 MiB and 100 KiB. An equal split caps the busy pair at a 1 MiB ring.
  auto s = config(PoolPolicy::static_equal, 64);
  s.max_pairs = 4;
  SharedPool equal(s);
  auto proportional = SharedPool(config(PoolPolicy::proportional, 64));
  for (auto* pool : {&equal, &proportional}) {
    REQUIRE(pool->add_pair(1, 0));
    REQUIRE(pool->add_pair(2, 0));
    CHECK(pool->utilisation() == 0);
    pool->report_demand(1, 3 * MiB, 1);
    pool->report_demand(2, 100 * KiB, 1);
    pool->rebalance(1);
  }
  CHECK(equal.utilisation() == Approx(double(1 * MiB + 100 * KiB) / double(4 * MiB)));
  CHECK(equal.allocated_fraction() == Approx(0.5));
  CHECK(proportional.ring_bytes(1) == 2 * MiB);
  CHECK(proportional.ring_bytes(2) == 2 * chunk);
  CHECK(proportional.utilisation() == Approx(double(2 * MiB + 100 * KiB) / double(4 * MiB)));
  CHECK(proportional.allocated_fraction() == Approx(34.0 / 64));
}

TEST_CASE("pool: resizes are feasible in order, pairs come and go", "[pool]") {
  SharedPool pool(config(PoolPolicy::proportional, 256));
  std::map<PairId, std::uint32_t> alloc; // what the platform has carried out
  std::uint64_t x = 88172645463325252ull;
  auto next = [&] {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return x;
  };
  std::size_t resizes = 0;
  for (int round = 0; round < 500; ++round) {
    PairId p = next() % 12;
    if (next() % 8 == 0) {
      if (pool.has_pair(p)) {
        pool.remove_pair(p, round);
        alloc.erase(p);
      } else if (pool.add_pair(p, round)) {
        alloc[p] = pool.allocation(p);
      }
    }
    for (auto& [id, a] : alloc) pool.report_demand(id, next() % (16 * MiB), round);
    auto r = pool.rebalance(round);
    resizes += r.size();
    std::uint64_t in_use = 0;
    for (auto& [id, a] : alloc) in_use += a;
    bool growing = false;
    for (const auto& z : r) {
      REQUIRE(alloc.count(z.pair));
      CHECK(alloc[z.pair] == z.old_chunks);
      growing = growing || z.new_chunks > z.old_chunks;
      CHECK_FALSE((growing && z.new_chunks < z.old_chunks)); // every shrink first
      in_use = in_use - z.old_chunks + z.new_chunks;
      CHECK(in_use <= pool.total_chunks()); // at every step
      alloc[z.pair] = z.new_chunks;
    }
    for (auto& [id, a] : alloc) {
      CHECK(pool.allocation(id) == a);
      CHECK(a >= 1);
      CHECK(std::has_single_bit(a));
    }
    CHECK(pool.free_chunks() == pool.total_chunks() - in_use);
  }
  CHECK(resizes > 100);
}

TEST_CASE("pool: demand smoothing, names, and refused configurations", "[pool]") {
  auto c = config(PoolPolicy::proportional, 64);
  c.demand_weight = 0.5;
  SharedPool pool(c);
  REQUIRE(pool.add_pair(pair_id(7, 3), 0));
  pool.report_demand(pair_id(3, 7), 0, 0); // the first report is taken as is
  pool.report_demand(pair_id(3, 7), 1 * MiB, 1);
  CHECK(pool.demand(pair_id(7, 3)) == 512 * KiB);
  CHECK(pair_id(3, 7) == ((PairId(3) << 32) | 7));

  CHECK_THROWS_AS(pool.add_pair(pair_id(3, 7), 2), std::invalid_argument);
  CHECK_THROWS_AS(pool.remove_pair(42, 2), std::invalid_argument);
  CHECK_THROWS_AS(pool.report_demand(42, 1, 2), std::invalid_argument);

  CHECK(to_string(PoolPolicy::static_equal) == "static_equal");
  CHECK(parse_pool_policy("proportional") == PoolPolicy::proportional);
  CHECK(parse_pool_policy("static") == PoolPolicy::static_equal);
  CHECK_FALSE(parse_pool_policy("buddy").has_value());

  auto bad = [](auto edit) {
    auto b = config(PoolPolicy::proportional, 64);
    edit(b);
    return b;
  };
  CHECK_THROWS_WITH(SharedPool(bad([](PoolConfig& b) { b.chunk_bytes = 48 * 1024; })),
                    Catch::Contains("chunk_bytes must be a power of two"));
  CHECK_THROWS_AS(SharedPool(bad([](PoolConfig& b) { b.pool_bytes = chunk - 1; })),
                  std::invalid_argument);
  CHECK_THROWS_AS(SharedPool(bad([](PoolConfig& b) { b.min_chunks = 3; })), std::invalid_argument);
  CHECK_THROWS_AS(SharedPool(bad([](PoolConfig& b) {
                    b.policy = PoolPolicy::static_equal;
                    b.max_pairs = 65; // more shares than chunks
                  })),
                  std::invalid_argument);
  CHECK_THROWS_AS(SharedPool(bad([](PoolConfig& b) { b.demand_weight = 0; })),
                  std::invalid_argument);
  CHECK_THROWS_AS(SharedPool(bad([](PoolConfig& b) { b.share_slack = 1; })), std::invalid_argument);
}
