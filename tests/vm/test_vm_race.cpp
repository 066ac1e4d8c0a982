// Issue 14: `ivmc run --backend kvm` plays a scenario's migrations as real QMP live migrations
// while a guest streams to a co-resident guest (scenarios/examples/kvm_migration.toml: a -> b
// on host 0, a moves to host 1 at 5 s and back at 10 s). The receiver checks every byte in
// place (a run whose checksums differ fails). The sender's race ledger counts its sends and
// link operations inside race windows by the flags the hosts' membership source writes into
// its region: with a 2 s periodic scan the windows after each move are long enough to hold
// sends, and with a 1.5 s watch delay the stale channel's failed send too; under synchronous
// update (the destination stays paused until every view is written) there are none.
#include "vm_fixture.hpp"

#include "cli_run.hpp"
#include "ivmc/experiment/draws.hpp"
#include "ivmc/experiment/load.hpp"
#include "ivmc/experiment/membership.hpp"
#include "ivmc/experiment/results.hpp"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace ivmc;
using namespace ivmc::vmtest;

namespace {

using Row = std::map<std::string, std::string>;

Row run_kvm(const std::string& out, const std::string& sets,
            const char* example = "kvm_migration.toml") {
  const std::string scenario = std::string(IVMC_SOURCE_DIR) + "/scenarios/examples/" + example;
  REQUIRE(run("run " + scenario + " --backend kvm --quiet " + sets + " --out " + out) == 0);
  const auto rows = experiment::read_results(out + "/results.csv");
  REQUIRE(rows.size() == 1);
  return rows.front();
}

} // namespace

TEST_CASE("ivmc run --backend kvm plays two live migrations while streaming, race windows "
          "measured",
          "[vm][run][race]") {
  const std::string scenario =
      std::string(IVMC_SOURCE_DIR) + "/scenarios/examples/kvm_migration.toml";
  const std::string base = std::string(IVMC_VM_LOG_DIR) + "/race-" + std::to_string(::getpid());
  std::filesystem::remove_all(base);
  REQUIRE(run("run " + scenario + " --quiet --out " + base + "/sim") == 0);

  const Row slow = run_kvm(base + "/periodic", "--set membership.period_ms=2000");
  CHECK(header_of(base + "/periodic/results.csv") == header_of(base + "/sim/results.csv"));
  auto num = [](const Row& row, const char* key) {
    INFO(key << " = " << row.at(key));
    return std::stod(row.at(key));
  };
  CHECK(num(slow, "migrations") == 2);
  CHECK(num(slow, "migration_s_mean") > 0);
  CHECK(num(slow, "w0_mbps") > 0);
  // Out and back: local at the start, remote after the move, local again after the return.
  CHECK(num(slow, "frames_local") > 0);
  CHECK(num(slow, "frames_remote") > 0);
  // Away by a failed stale send (a fallback) or by the view update (a switch), whichever came
  // first.
  CHECK(num(slow, "switches_to_remote") + num(slow, "fallbacks") >= 1);
  CHECK(num(slow, "switches_to_local") >= 1);
  CHECK(num(slow, "channels_opened") >= 2); // a new instance after the return
  CHECK(num(slow, "w0_local_share") > 0);
  CHECK(num(slow, "w0_local_share") < 1);
  CHECK(num(slow, "lost_bytes") == 0);
  // The race: measured in the guest, never NaN, and non-zero with a 2 s scan.
  for (const char* key : {"sends_in_race_window", "race_exposure", "race_operations", "race_errors",
                          "pending_bytes", "recovered_bytes", "membership_probes"})
    CHECK(!std::isnan(num(slow, key)));
  CHECK(num(slow, "sends_in_race_window") > 0);
  CHECK(num(slow, "race_exposure") > 0);
  CHECK(num(slow, "race_exposure") < 1);
  // Whether the stale send fails inside the window depends on where the scan falls (the watch
  // run below makes it certain); the cells must add up either way.
  CHECK(num(slow, "race_operations") ==
        num(slow, "race_establishment_migration_in") + num(slow, "race_establishment_creation") +
            num(slow, "race_establishment_migration_out") +
            num(slow, "race_establishment_shutdown") + num(slow, "race_pending_data_migration_in") +
            num(slow, "race_pending_data_creation") + num(slow, "race_pending_data_migration_out") +
            num(slow, "race_pending_data_shutdown") + num(slow, "race_teardown_migration_in") +
            num(slow, "race_teardown_creation") + num(slow, "race_teardown_migration_out") +
            num(slow, "race_teardown_shutdown"));

  // An event watch whose advertisement takes 1.5 s: each window is that long, so the stale
  // channel's failed send (and the teardown after it) falls inside one (Table IV).
  const Row watch = run_kvm(base + "/watch", "--set membership.detection=watch --set "
                                             "membership.watch_delay_us=1500000");
  CHECK(num(watch, "migrations") == 2);
  CHECK(num(watch, "sends_in_race_window") > 0);
  CHECK(num(watch, "race_operations") > 0);
  CHECK(num(watch, "race_errors") > 0);
  CHECK(num(watch, "race_pending_data_migration_out") > 0); // the stale send, re-sent remote
  CHECK(num(watch, "fallbacks") >= 1);

  const Row sync = run_kvm(base + "/sync", "--set membership.detection=sync");
  CHECK(num(sync, "migrations") == 2);
  CHECK(num(sync, "frames_local") > 0);
  CHECK(num(sync, "frames_remote") > 0);
  CHECK(num(sync, "switches_to_local") >= 1);
  CHECK(num(sync, "sends_in_race_window") == 0);
  CHECK(num(sync, "race_exposure") == 0);
  CHECK(num(sync, "race_operations") == 0);
  CHECK(num(sync, "lost_bytes") == 0);

  figure("kvm migration run, periodic 2 s: race exposure", num(slow, "race_exposure"), "");
  figure("kvm migration run, periodic 2 s: sends in race windows",
         num(slow, "sends_in_race_window"), "sends");
  figure("kvm migration run: mean live migration", num(slow, "migration_s_mean") * 1e3, "ms");
  figure("kvm migration run, periodic 2 s: stream", num(slow, "w0_mbps"), "Mb/s");
  figure("kvm migration run, watch 1.5 s: race exposure", num(watch, "race_exposure"), "");
  figure("kvm migration run, sync: stream", num(sync, "w0_mbps"), "Mb/s");
}

// Poisson migrations (scenarios/examples/kvm_poisson_migration.toml: a [[generator]] moves a
// between hosts 0 and 1): the kvm run draws them from the seed as the simulator does and plays
// every one as a live migration, under a periodic and an adaptive scan.
TEST_CASE("ivmc run --backend kvm plays a generator's Poisson migrations, periodic and adaptive "
          "membership",
          "[vm][run][race][generator]") {
  const std::string scenario =
      std::string(IVMC_SOURCE_DIR) + "/scenarios/examples/kvm_poisson_migration.toml";
  const experiment::Scenario s = experiment::load_scenario(scenario);
  experiment::Draws draws(s.seed);
  const double drawn =
      static_cast<double>(experiment::draw_generators(s, experiment::vm_ids(s), draws).size());
  REQUIRE(drawn >= 2);
  const std::string base = std::string(IVMC_VM_LOG_DIR) + "/poisson-" + std::to_string(::getpid());
  std::filesystem::remove_all(base);
  REQUIRE(run("run " + scenario + " --quiet --out " + base + "/sim") == 0);
  const auto sim_rows = experiment::read_results(base + "/sim/results.csv");
  REQUIRE(sim_rows.size() == 1);
  auto num = [](const Row& row, const char* key) {
    INFO(key << " = " << row.at(key));
    return std::stod(row.at(key));
  };
  CHECK(num(sim_rows.front(), "migrations") == drawn); // the simulator played the same draws

  // The run fails unless the receiver checked every byte and the checksums agree.
  for (const char* detection : {"periodic", "adaptive"}) {
    INFO(detection);
    const std::string out = base + "/" + detection;
    const Row row = run_kvm(out, std::string("--set membership.detection=") + detection,
                            "kvm_poisson_migration.toml");
    CHECK(header_of(out + "/results.csv") == header_of(base + "/sim/results.csv"));
    CHECK(num(row, "migrations") == drawn);
    CHECK(num(row, "migration_s_mean") > 0);
    CHECK(num(row, "w0_mbps") > 0);
    CHECK(num(row, "lost_bytes") == 0);
    CHECK(num(row, "frames_local") > 0);
    CHECK(num(row, "frames_remote") > 0);
    CHECK(num(row, "switches_to_local") >= 1);
    for (const char* key :
         {"sends_in_race_window", "race_exposure", "race_operations", "race_errors",
          "race_deferred", "pending_bytes", "recovered_bytes", "membership_probes"})
      CHECK(!std::isnan(num(row, key)));
    CHECK(num(row, "membership_probes") > 0);
    CHECK(num(row, "race_exposure") >= 0);
    CHECK(num(row, "race_exposure") < 1);
    figure(std::string("kvm Poisson migrations, ") + detection + ": race exposure",
           num(row, "race_exposure"), "");
  }
}
