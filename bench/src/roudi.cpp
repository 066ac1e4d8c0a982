#include "roudi.hpp"

#include "harness.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace ivmc::bench {
namespace {

constexpr const char* kReady = "RouDi is ready for clients";

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The log's last meaningful line, without the logger's colour codes: why RouDi did not start.
std::string last_error(const std::string& log) {
  std::string plain;
  for (std::size_t i = 0; i < log.size(); ++i) {
    if (log[i] == '\x1b') {
      while (i < log.size() && log[i] != 'm') ++i;
      continue;
    }
    plain += log[i];
  }
  std::stringstream lines(plain);
  std::string line, fatal, last;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    last = line;
    if (fatal.empty() &&
        (line.find("Fatal") != std::string::npos || line.find("Error") != std::string::npos)) {
      fatal = line;
    }
  }
  std::string line_out = fatal.empty() ? last : fatal;
  // Drop the logger's timestamp: "2026-01-01 12:00:00.000 [ Fatal ]: what" -> "what".
  if (const auto colon = line_out.find("]: "); colon != std::string::npos) {
    line_out = line_out.substr(colon + 3);
  }
  return line_out;
}

void wait_or_kill(pid_t pid, double grace_s) {
  const double deadline = now_s() + grace_s;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (now_s() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

} // namespace

std::unique_ptr<Roudi> Roudi::start(const std::vector<MemPool>& pools, std::string& why_not,
                                    double timeout_s) {
  const std::string binary = find_on_path("iox-roudi");
  if (binary.empty()) {
    why_not = "iox-roudi is not on PATH (Debian package iceoryx; scripts/deps.sh installs it)";
    return nullptr;
  }
  const std::string stem = "/tmp/ivmc-bench-" + std::to_string(getpid()) + "-roudi";
  const std::string config = stem + ".toml", log = stem + ".log";
  {
    std::ofstream out(config);
    out << "# written by ivmc bench for one run of its iceoryx baseline\n"
           "[general]\nversion = 1\n\n[[segment]]\n";
    for (const MemPool& p : pools) {
      out << "\n[[segment.mempool]]\nsize = " << p.chunk_bytes << "\ncount = " << p.count << "\n";
    }
    if (!out) {
      why_not = "cannot write " + config;
      return nullptr;
    }
  }
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    why_not = std::string("fork: ") + std::strerror(errno);
    unlink(config.c_str());
    return nullptr;
  }
  if (pid == 0) {
    if (!die_with_parent(SIGTERM)) _exit(126);
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || null < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 || dup2(null, 0) < 0) _exit(126);
    // Let it run anywhere: the measuring processes are pinned, RouDi's discovery loop is not.
    cpu_set_t all;
    CPU_ZERO(&all);
    for (int c = 0; c < online_cpus(); ++c) CPU_SET(c, &all);
    sched_setaffinity(0, sizeof all, &all);
    execl(binary.c_str(), "iox-roudi", "--config-file", config.c_str(), "--log-level", "warning",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  std::unique_ptr<Roudi> roudi(new Roudi(pid, config, log));
  const double deadline = now_s() + timeout_s;
  for (;;) {
    const std::string text = read_file(log);
    if (text.find(kReady) != std::string::npos) {
      unlink(config.c_str()); // read by now; only the log is left for an interruption to remove
      return roudi;
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      roudi->pid_ = -1; // already reaped
      why_not = "iox-roudi exited at start: " + last_error(text);
      return nullptr;
    }
    if (now_s() > deadline) {
      why_not = "iox-roudi was not ready within " + std::to_string(static_cast<int>(timeout_s)) +
                " s: " + last_error(text);
      return nullptr; // the destructor stops it
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Roudi::Roudi(pid_t pid, std::string config, std::string log)
    : pid_(pid), config_path_(std::move(config)), log_path_(std::move(log)),
      guard_(std::make_unique<CleanupGuard>(pid, SIGTERM, log_path_)) {}

Roudi::~Roudi() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM); // RouDi's orderly shutdown unlinks its shared memory and socket
    wait_or_kill(pid_, 5.0);
  }
  guard_.reset();
  unlink(config_path_.c_str());
  unlink(log_path_.c_str());
}

} // namespace ivmc::bench
