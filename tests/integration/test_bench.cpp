// `ivmc bench` briefly, between real processes: iceoryx measured beside the ring (iox-roudi
// started and stopped by the bench, nothing left behind), or skipped with a visible reason;
// every row and run says where its processes ran; the bare ring it judges the channel by carries
// every message between two processes.
#include "ivmc/bench/bench.hpp"

#include "bare_ring.hpp"
#include "harness.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <string>

using namespace ivmc::bench;

namespace {

BenchOptions brief() {
  BenchOptions o;
  o.sizes = {64, 65536};
  o.seconds_per_point = 0.02;
  o.repeats = 1;
  o.rtt_iterations = 200;
  return o;
}

const TransportResult* row(const BenchReport& r, const std::string& transport,
                           const std::string& mode, std::size_t size) {
  for (const auto& x : r.results) {
    if (x.transport == transport && x.mode == mode && x.size == size) return &x;
  }
  return nullptr;
}

[[maybe_unused]] bool exists(const std::string& path) {
  return access(path.c_str(), F_OK) == 0;
}

// PATH without iox-roudi for the lifetime of the object.
struct PathWithoutRoudi {
  PathWithoutRoudi() : saved(std::getenv("PATH") ? std::getenv("PATH") : "") {
    setenv("PATH", "/nonexistent-ivmc-test", 1);
  }
  ~PathWithoutRoudi() { setenv("PATH", saved.c_str(), 1); }
  std::string saved;
};

} // namespace

TEST_CASE("the bench measures iceoryx beside the ring, and stops and removes RouDi",
          "[bench][iceoryx]") {
#if IVMC_BENCH_ICEORYX
  const BenchReport r = run_bench(brief());
  INFO(r.iceoryx);
  REQUIRE(r.iceoryx == "measured");
  for (std::size_t size : {64, 65536}) {
    const auto* iox = row(r, "iceoryx", "zero_copy", size);
    REQUIRE(iox != nullptr);
    CHECK(iox->gbps > 0);
    CHECK(iox->msgs_per_s > 0);
  }
  REQUIRE(row(r, "iceoryx", "zero_copy", 64)->rtt_p50_ns.has_value());
  CHECK(*row(r, "iceoryx", "zero_copy", 64)->rtt_p50_ns > 0);
  CHECK(r.iceoryx_rtt_ratio > 0);
  const std::string json = to_json(r);
  CHECK(json.find("\"transport\": \"iceoryx\"") != std::string::npos);
  CHECK(json.find("\"iceoryx\": \"measured\"") != std::string::npos);
  // The bench's RouDi is gone, with its log and configuration.
  const std::string stem = "/tmp/ivmc-bench-" + std::to_string(getpid()) + "-roudi";
  CHECK_FALSE(exists(stem + ".log"));
  CHECK_FALSE(exists(stem + ".toml"));
#else
  const BenchReport r = run_bench(brief());
  CHECK(r.iceoryx.rfind("skipped: this build has no iceoryx", 0) == 0);
  CHECK(row(r, "iceoryx", "zero_copy", 64) == nullptr);
#endif
}

TEST_CASE("the bench skips iceoryx with a visible reason when iox-roudi cannot start",
          "[bench][iceoryx]") {
  BenchReport r;
  {
    PathWithoutRoudi no_roudi;
    r = run_bench(brief());
  }
  INFO(r.iceoryx);
  CHECK(r.iceoryx.rfind("skipped: ", 0) == 0);
#if IVMC_BENCH_ICEORYX
  CHECK(r.iceoryx.find("iox-roudi is not on PATH") != std::string::npos);
#endif
  CHECK(row(r, "iceoryx", "zero_copy", 64) == nullptr);
  CHECK(row(r, "ring", "poll", 64) != nullptr); // the rest of the bench ran
  CHECK(to_json(r).find("\"iceoryx\": \"skipped: ") != std::string::npos);
  CHECK(to_table(r).find("iceoryx 2.0: skipped: ") != std::string::npos);
}

TEST_CASE("every row and run says where its processes ran and whether they had their CPUs",
          "[bench]") {
  const BenchReport r = run_bench(brief());
  REQUIRE_FALSE(r.runs.empty());
  for (const RunRecord& run : r.runs) {
    INFO(run.transport << " " << run.mode << " " << run.size);
    CHECK((run.speed == "full" || run.speed == "shared"));
    if (r.machine.online_cpus >= 2) {
      CHECK(run.measuring.cpu_start == 0); // pinned like the ring's: CPUs 0 and 1
      CHECK(run.peer.cpu_start == 1);
      CHECK(run.measuring.cpu_share >= 0);
      CHECK(run.measuring.cpu_share <= 1.05);
    }
  }
  for (const char* mode : {"poll", "poll_crc", "zero_copy", "block"}) {
    const auto* x = row(r, "ring", mode, 65536);
    REQUIRE(x != nullptr);
    CHECK(x->gbps > 0);
    CHECK(x->runs >= 1);
  }
  CHECK(r.zero_copy_rtt_ratio > 0);
  for (std::size_t s : {48, 56}) { // one-line round trips
    REQUIRE(r.poll_small_rtt_ratio.count(s) == 1);
    CHECK(r.poll_small_rtt_ratio.at(s) > 0);
  }
  CHECK(r.crc_rtt_ratio > 0); // the 64 B round trip with record checks
  CHECK(r.bare_rtt_ns > 0);   // the bare ring took turns with the polled 64 B ring
  CHECK(r.poll_over_bare_rtt_ratio > 0);
  CHECK(r.bare_rtt_ratio > 0);
  CHECK_FALSE(r.machine.model_name.empty());
  if (r.machine.online_cpus >= 2) {
    REQUIRE(r.machine.cpus.size() == 2);
    CHECK(r.machine.cpus[0].measured_ghz_start > 0.1);
    CHECK_FALSE(r.machine.topology.empty());
  }
  const std::string json = to_json(r);
  CHECK(json.find("\"runs\": [{") != std::string::npos);
  CHECK(json.find("\"machine\": {") != std::string::npos);
  CHECK(json.find("\"mode\": \"zero_copy\"") != std::string::npos);
  CHECK(json.find("\"mode\": \"poll_crc\"") != std::string::npos);
  CHECK(json.find("\"poll_small_rtt_ratio\": ") != std::string::npos);
  CHECK(json.find("\"poll_over_bare_rtt_ratio\": ") != std::string::npos);
  CHECK(json.find("\"poll_gbps_64k_over_memcpy_1m_by_mode\": {\"") != std::string::npos);
  CHECK((json.find("\"placement\": \"near\"") != std::string::npos ||
         json.find("\"placement\": \"far\"") != std::string::npos));
  CHECK(json.find("\"poll_rtt_over_bare\": {\"value\": ") != std::string::npos);
  const std::string table = to_table(r);
  CHECK(table.find("speed modes: ") != std::string::npos);
  CHECK(table.find("core clock measured") != std::string::npos);
  CHECK(table.find("64 B polled RTT / bare two-line ring RTT") != std::string::npos);
  CHECK(table.find("throughput runs by speed mode") != std::string::npos);
}

TEST_CASE("the bare ring echoes every message between two processes, across many laps", "[bench]") {
  // 4 KiB per direction holds 55 records: 1,000 round trips wrap each ring 18 times, through
  // every 8-byte offset of a line. parent_round throws if an echo differs from its message.
  BareRing ring(4096);
  std::vector<double> first, second;
  run_pair(
      "bare ring test", online_cpus() >= 2 ? 0 : -1, online_cpus() >= 2 ? 1 : -1,
      [&] {
        first = ring.parent_round(1000);
        second = ring.parent_round(7);
      },
      [&] {
        ring.child_round(1000);
        ring.child_round(7);
        return 0;
      });
  CHECK(first.size() == 1000);
  CHECK(second.size() == 7);
  for (double ns : first) CHECK(ns > 0);
  CHECK_THROWS_AS(BareRing(100), std::invalid_argument); // too small for a record and more
}
