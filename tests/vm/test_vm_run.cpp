// `ivmc run SCENARIO --backend kvm`, as a user runs it: the example scenario's workloads on
// real guests, into the same results.csv columns as the simulation of the same scenario.
#include "vm_fixture.hpp"

#include "cli_run.hpp"
#include "ivmc/experiment/results.hpp"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace ivmc;
using namespace ivmc::vmtest;

TEST_CASE("ivmc run --backend kvm writes the simulation's results schema from real guests",
          "[vm][run]") {
  const std::string scenario = std::string(IVMC_SOURCE_DIR) + "/scenarios/examples/kvm_pair.toml";
  const std::string base = std::string(IVMC_VM_LOG_DIR) + "/run-" + std::to_string(::getpid());
  std::filesystem::remove_all(base);
  REQUIRE(run("run " + scenario + " --quiet --out " + base + "/sim") == 0);
  constexpr std::uint64_t kStreamBytes = 16u << 20;
  REQUIRE(run("run " + scenario + " --backend kvm --quiet --kvm-bytes " +
              std::to_string(kStreamBytes) + " --out " + base + "/kvm") == 0);
  const std::string sim_header = header_of(base + "/sim/results.csv");
  REQUIRE(!sim_header.empty());
  CHECK(header_of(base + "/kvm/results.csv") == sim_header);

  const auto rows = experiment::read_results(base + "/kvm/results.csv");
  REQUIRE(rows.size() == 1);
  const auto& row = rows.front();
  auto num = [&](const char* key) { return std::stod(row.at(key)); };
  // The path metrics are what the agents measured (frames their ring or their TCP path took,
  // rings they opened), checked against what this test set up: a and b share host 0, so w0
  // (stream) and w2 (rr) must have gone entirely through a ring, and w1 and w3 (a -> c, two
  // hosts) entirely over TCP. Each stream is kStreamBytes in kvm_pair's 4096 B messages; each
  // rr workload is 1,000 round trips (docs/results.md), a request and a reply each.
  const double stream_frames = kStreamBytes / 4096.0, rr_frames = 2 * 1000.0;
  CHECK(num("w0_local_share") == 1);
  CHECK(num("w1_local_share") == 0);
  CHECK(num("w2_local_share") == 1);
  CHECK(num("w3_local_share") == 0);
  CHECK(num("frames_local") == stream_frames + rr_frames);  // w0 and w2, nothing else
  CHECK(num("frames_remote") == stream_frames + rr_frames); // w1 and w3, nothing else
  CHECK(num("sends") == 2 * (stream_frames + rr_frames));
  CHECK(num("channels_opened") == 2); // w0's ring and w2's, each opened by both guests
  CHECK(num("w0_mbps") > 0);
  CHECK(num("w1_mbps") > 0);
  CHECK(num("w2_transactions_per_s") > 0);
  CHECK(num("w3_transactions_per_s") > 0);
  CHECK(num("lost_messages") == 0);
  CHECK(std::isnan(num("race_exposure"))); // not observable on guests: NaN, never a made-up 0
  figure("ivmc run --backend kvm: guest->guest channel stream (kvm_pair w0)", num("w0_mbps"),
         "Mb/s");
  figure("ivmc run --backend kvm: guest->guest TCP stream (kvm_pair w1)", num("w1_mbps"), "Mb/s");
}

TEST_CASE("ivmc run --backend kvm refuses a scenario with events it cannot play", "[vm][run]") {
  // The default scenario migrates VMs: refused before any guest starts, with the way out named.
  const std::string cmd =
      std::string(IVMC_CLI_BIN) + " run default --backend kvm --quiet 2>&1 | grep -q ignore-events";
  CHECK(std::system(cmd.c_str()) == 0);
}
