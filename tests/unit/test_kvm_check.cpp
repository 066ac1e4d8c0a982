// The kvm backend's refusals (KvmBackend::check): what it cannot play is named at its file:line
// before any guest boots. No QEMU here.
#include "ivmc/kvm/kvm_backend.hpp"

#include "ivmc/kvm/dead_run_files.hpp"

#include "ivmc/backends/table.hpp"
#include "ivmc/experiment/load.hpp"

#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

using namespace ivmc;

namespace {

const char* const kWithEvents = R"(name = "k"
duration_s = 2
[channel]
ring_kib = 4
[[vm]]
name = "a"
host = 0
[[vm]]
name = "b"
host = 0
[[workload]]
from = "a"
to = "b"
message_bytes = 8192
[[event]]
kind = "migrate"
at_s = 1
vm = "a"
host = 1
[[generator]]
kind = "shutdown"
)";

std::string dump(const std::vector<experiment::ScenarioIssue>& issues) {
  std::string out;
  for (const auto& i : issues) out += i.where + ": " + i.what + "\n";
  return out;
}

} // namespace

// The issue whose text starts with `prefix`, or null.
const experiment::ScenarioIssue* find(const std::vector<experiment::ScenarioIssue>& issues,
                                      const std::string& prefix) {
  for (const auto& i : issues)
    if (i.what.rfind(prefix, 0) == 0) return &i;
  return nullptr;
}

TEST_CASE("kvm refuses what it cannot play of a scenario with events, at their lines",
          "[backends][kvm]") {
  const auto s = experiment::parse_scenario(kWithEvents, "k.toml");
  experiment::BackendSettings settings;
  const auto kvm = backends::make_backend("kvm", settings);
  const auto issues = kvm->check(s);
  INFO(dump(issues));
  REQUIRE(issues.size() == 4);
  CHECK(issues[0].where == "k.toml:14");
  CHECK(issues[0].what.rfind("workload[0].message_bytes: 8192 B messages do not fit a 4 KiB ring",
                             0) == 0);
  // The migration is played, but not 1 s after the start (a TCG migration takes a second).
  const auto* early = find(issues, "event[0]: at 1 s: the kvm backend needs 4 s");
  REQUIRE(early != nullptr);
  CHECK(early->where == "k.toml:15");
  const auto* generator =
      find(issues, "generator[0]: the kvm backend's generators draw migrations only, not shutdown");
  REQUIRE(generator != nullptr);
  CHECK(generator->where == "k.toml:20");
  const auto* short_run = find(issues, "duration_s: the stream must run 2 s past");
  REQUIRE(short_run != nullptr);
  CHECK(short_run->where == "k.toml:2");
  for (const auto& i : issues) {
    if (&i == &issues[0]) continue;
    CHECK(i.what.find("--ignore-events") != std::string::npos); // the way out is named
  }

  settings.ignore_events = true;
  const auto lenient = backends::make_backend("kvm", settings)->check(s);
  INFO(dump(lenient));
  REQUIRE(lenient.size() == 1);
  CHECK(lenient[0].where == "k.toml:14");
}

TEST_CASE("kvm refuses, with migrations, what its guests do not play yet", "[backends][kvm]") {
  const char* const text = R"(name = "k"
duration_s = 20
[membership]
detection = "group"
race = "none"
[[vm]]
name = "a"
host = 0
[[vm]]
name = "b"
host = 1
[[vm]]
name = "c"
host = 0
[[workload]]
kind = "udp_stream"
from = "a"
to = "b"
rate_per_s = 100
[[event]]
kind = "migrate"
at_s = 5
vm = "a"
host = 1
[[event]]
kind = "shutdown"
at_s = 10
vm = "c"
)";
  const auto s = experiment::parse_scenario(text, "k.toml");
  const auto issues = backends::make_backend("kvm", {})->check(s);
  INFO(dump(issues));
  for (const char* prefix :
       {"workload[0].kind: with migrations the kvm backend plays tcp_stream only, not udp_stream",
        "workload[0].rate_per_s: ", "workload[0].from: the migrating VM must start on its",
        "vm[2]: with migrations the kvm backend boots only", "membership.detection: ",
        "membership.race: race = none", "event[1]: the kvm backend plays migrate events only"}) {
    INFO(prefix);
    CHECK(find(issues, prefix) != nullptr);
  }
  CHECK(issues.size() == 7);
}

TEST_CASE("kvm plays the migration example it documents", "[backends][kvm]") {
  const auto s =
      experiment::load_scenario(IVMC_SOURCE_DIR "/scenarios/examples/kvm_migration.toml");
  CHECK(backends::make_backend("kvm", {})->check(s).empty());
}

TEST_CASE("kvm plays the example it documents", "[backends][kvm]") {
  const auto s = experiment::load_scenario(IVMC_SOURCE_DIR "/scenarios/examples/kvm_pair.toml");
  CHECK(backends::make_backend("kvm", {})->check(s).empty());
}

TEST_CASE("a kvm run removes the shm objects and sockets of runs killed outright, only theirs",
          "[backends][kvm]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ivmc-dead-run-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // A pid that certainly no longer exists: a child that has exited and been reaped.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  const std::string dead = std::to_string(child), alive = std::to_string(::getpid());
  auto touch = [&](const std::string& name) { std::ofstream(dir / name) << "x"; };
  touch("ivmc-mig-" + dead + "-h0");
  touch("ivmc-mig-" + dead + "-h1.sock");
  touch("ivmc-mig-" + dead + "-m0.log");                          // not a suffix asked for below
  touch("ivmc-mig-" + alive + "-h0.sock");                        // a live run's
  touch("ivmc-mig-" + dead);                                      // no dash after the pid
  touch("ivmc-mig-x" + dead + "-h0.sock");                        // no pid
  touch("ivmc-mig-99999999999999999999-h0.sock");                 // out of range
  touch("ivmc-host-" + dead + "-h0.sock");                        // another prefix
  fs::create_directories(dir / ("ivmc-mig-" + dead + "-d.sock")); // a directory

  CHECK(kvm::remove_files_of_dead_runs(dir.string(), "ivmc-mig-", {".sock"}) == 1);
  CHECK_FALSE(fs::exists(dir / ("ivmc-mig-" + dead + "-h1.sock")));
  CHECK(fs::exists(dir / ("ivmc-mig-" + dead + "-h0")));
  CHECK(kvm::remove_files_of_dead_runs(dir.string(), "ivmc-mig-") == 2); // -h0 and -m0.log
  for (const std::string& name :
       {"ivmc-mig-" + alive + "-h0.sock", "ivmc-mig-" + dead, "ivmc-mig-x" + dead + "-h0.sock",
        std::string("ivmc-mig-99999999999999999999-h0.sock"), "ivmc-host-" + dead + "-h0.sock",
        "ivmc-mig-" + dead + "-d.sock"})
    CHECK(fs::exists(dir / name));
  CHECK(kvm::remove_files_of_dead_runs((dir / "missing").string(), "ivmc-mig-") == 0);
  fs::remove_all(dir);
}
