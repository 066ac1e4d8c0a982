// `ivmc run SCENARIO --backend kvm`, as a user runs it: the example scenario's workloads on
// real guests, into the same results.csv columns as the simulation of the same scenario.
#include "vm_fixture.hpp"

#include "ivmc/experiment/results.hpp"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace ivmc;
using namespace ivmc::vmtest;

namespace {

std::string header_of(const std::string& csv) {
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);
  return line;
}

int run(const std::string& args) {
  const std::string cmd = std::string(IVMC_CLI_BIN) + " " + args;
  INFO(cmd);
  return std::system(cmd.c_str());
}

} // namespace

TEST_CASE("ivmc run --backend kvm writes the simulation's results schema from real guests",
          "[vm][run]") {
  const std::string scenario = std::string(IVMC_SOURCE_DIR) + "/scenarios/examples/kvm_pair.toml";
  const std::string base = std::string(IVMC_VM_LOG_DIR) + "/run-" + std::to_string(::getpid());
  std::filesystem::remove_all(base);
  REQUIRE(run("run " + scenario + " --quiet --out " + base + "/sim") == 0);
  REQUIRE(run("run " + scenario + " --backend kvm --quiet --kvm-bytes 16777216 --out " + base +
              "/kvm") == 0);
  const std::string sim_header = header_of(base + "/sim/results.csv");
  REQUIRE(!sim_header.empty());
  CHECK(header_of(base + "/kvm/results.csv") == sim_header);

  const auto rows = experiment::read_results(base + "/kvm/results.csv");
  REQUIRE(rows.size() == 1);
  const auto& row = rows.front();
  auto num = [&](const char* key) { return std::stod(row.at(key)); };
  CHECK(num("w0_local_share") == 1); // a -> b share host 0: the channel
  CHECK(num("w1_local_share") == 0); // a -> c across hosts: the guests' TCP path
  CHECK(num("w0_mbps") > 0);
  CHECK(num("w1_mbps") > 0);
  CHECK(num("w2_transactions_per_s") > 0);
  CHECK(num("w3_transactions_per_s") > 0);
  CHECK(num("lost_messages") == 0);
  CHECK(num("channels_opened") == 2);
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
