// Issue 14: `ivmc sweep --backend kvm` of membership.period_ms on the KVM migration scenario
// (scenarios/examples/kvm_migration.toml: a streams to b, live-migrates to host 1 and back),
// interrupted once its first row has landed and run again with the same --out: the first row
// is kept as it was, only the missing point runs, and the files the killed run left (its
// ivshmem servers' shm objects and sockets) are gone after the next run. Each point's period
// reaches the guests' run: the hosts' scanner probes about 3x as often at 1 s as at 3 s.
#include "vm_fixture.hpp"

#include "cli_run.hpp"
#include "ivmc/experiment/results.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

using namespace ivmc;
using namespace ivmc::vmtest;

namespace {

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string text_of(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// /dev/shm entries of kvm migration runs whose process is gone.
std::vector<std::string> dead_runs_shm() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator("/dev/shm")) {
    const std::string name = e.path().filename().string();
    int pid = 0;
    if (std::sscanf(name.c_str(), "ivmc-mig-%d-", &pid) == 1 && pid > 0 && ::kill(pid, 0) != 0 &&
        errno == ESRCH)
      out.push_back(name);
  }
  return out;
}

} // namespace

TEST_CASE("ivmc sweep --backend kvm of the scan period, interrupted and resumed",
          "[vm][sweep][race]") {
  const std::string scenario =
      std::string(IVMC_SOURCE_DIR) + "/scenarios/examples/kvm_migration.toml";
  const std::string out = std::string(IVMC_VM_LOG_DIR) + "/sweep-" + std::to_string(::getpid());
  std::filesystem::remove_all(out);
  std::filesystem::create_directories(out);
  const std::string csv = out + "/results.csv";
  const std::vector<std::string> args = {IVMC_CLI_BIN,
                                         "sweep",
                                         scenario,
                                         "--backend",
                                         "kvm",
                                         "--param",
                                         "membership.period_ms=1000,3000",
                                         "--out",
                                         out};

  // The first sweep, interrupted (SIGINT, as a terminal's Ctrl-C) once one row has landed.
  const pid_t sweep = ::fork();
  REQUIRE(sweep >= 0);
  if (sweep == 0) {
    const int log = ::open((out + "-first.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (log >= 0) {
      ::dup2(log, STDOUT_FILENO);
      ::dup2(log, STDERR_FILENO);
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(4);
  bool one_row = false;
  int status = 0;
  bool ended = false;
  while (!one_row && std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(sweep, &status, WNOHANG) == sweep) {
      ended = true;
      break;
    }
    one_row = lines_of(csv).size() >= 2; // the header and a row
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  INFO(text_of(out + "-first.log"));
  REQUIRE_FALSE(ended); // two points take longer than one
  REQUIRE(one_row);
  std::this_thread::sleep_for(std::chrono::seconds(5)); // the second point's guests are up
  REQUIRE(::kill(sweep, SIGINT) == 0);
  REQUIRE(::waitpid(sweep, &status, 0) == sweep);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 128 + SIGINT);
  const std::vector<std::string> first = lines_of(csv);
  REQUIRE(first.size() == 2);
  CHECK(text_of(out + "/meta.json").find("\"state\": \"interrupted\"") != std::string::npos);

  // The same sweep again: the kept row, and the other point.
  std::string cmd;
  for (std::size_t i = 1; i < args.size(); ++i) cmd += args[i] + " "; // no spaces in them
  REQUIRE(run(cmd + "> " + out + "-second.log 2>&1") == 0);
  const std::vector<std::string> second = lines_of(csv);
  REQUIRE(second.size() == 3);
  CHECK(second[0] == first[0]);
  CHECK(second[1] == first[1]); // byte for byte: not run again
  const std::string meta = text_of(out + "/meta.json");
  CHECK(meta.find("\"state\": \"complete\"") != std::string::npos);
  CHECK(meta.find("\"runs_already_done_at_start\": 1") != std::string::npos);
  CHECK(dead_runs_shm().empty()); // the killed run's regions were removed by the next

  const auto rows = experiment::read_results(csv);
  REQUIRE(rows.size() == 2);
  std::map<std::string, std::map<std::string, std::string>> by_period;
  for (const auto& r : rows) by_period[r.at("membership.period_ms")] = r;
  REQUIRE(by_period.count("1000") == 1);
  REQUIRE(by_period.count("3000") == 1);
  auto num = [](const std::map<std::string, std::string>& row, const char* key) {
    INFO(key << " = " << row.at(key));
    return std::stod(row.at(key));
  };
  for (const auto& [period, row] : by_period) {
    INFO("membership.period_ms = " << period);
    CHECK(num(row, "migrations") == 2);
    CHECK(num(row, "lost_bytes") == 0);
    CHECK(num(row, "frames_remote") > 0);
    for (const char* key : {"race_exposure", "sends_in_race_window", "race_operations"})
      CHECK(!std::isnan(num(row, key)));
  }
  // Two hosts scanned from the set-up to the end (the boot and the 14 s stream: 28-35 s wall
  // here): at least 2 x 14 / 1 and 2 x 14 / 3 scans, about 3x as many at 1 s; the period is the
  // only difference between the points.
  const double fast = num(by_period["1000"], "membership_probes");
  const double slow = num(by_period["3000"], "membership_probes");
  CHECK(fast >= 28);
  CHECK(slow >= 9);
  CHECK(fast > 2 * slow);
  figure("kvm sweep: race exposure at T = 1 s", num(by_period["1000"], "race_exposure"), "");
  figure("kvm sweep: race exposure at T = 3 s", num(by_period["3000"], "race_exposure"), "");
}
