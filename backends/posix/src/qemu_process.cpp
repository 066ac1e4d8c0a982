// QEMU as a child process: see include/ivmc/posix/qemu_process.hpp.
#include "ivmc/posix/qemu_process.hpp"

#include "ivmc/posix/clock.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ivmc::posix {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool executable(const std::string& path) {
  return !path.empty() && ::access(path.c_str(), X_OK) == 0;
}

} // namespace

std::string find_qemu() {
  if (const char* env = std::getenv("IVMC_QEMU"); env && *env) {
    return executable(env) ? std::string(env) : std::string();
  }
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/qemu-system-x86_64";
    if (executable(candidate)) return candidate;
  }
  return {};
}

QemuProcess::QemuProcess(std::vector<std::string> command, std::string console,
                         const std::string& who)
    : command_(std::move(command)), console_path_(std::move(console)),
      output_path_(console_path_ + ".qemu") {
  if (command_.empty()) throw std::runtime_error(who + ": no QEMU command");
  // Everything the child needs is prepared before fork(): it only calls async-signal-safe
  // functions before exec.
  std::vector<char*> argv;
  for (std::string& s : command_) argv.push_back(s.data());
  argv.push_back(nullptr);
  const std::string exec_failed = who + ": exec of QEMU failed\n";
  (void)::unlink(console_path_.c_str()); // a stale console must not be read as this one's
  const int out = ::open(output_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int null_in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out < 0 || null_in < 0) {
    if (out >= 0) ::close(out);
    if (null_in >= 0) ::close(null_in);
    throw std::runtime_error(who + ": cannot open " + output_path_);
  }
  const pid_t parent = ::getpid();
  started_ = MonotonicClock::read();
  pid_ = ::fork();
  if (pid_ == 0) {
    // QEMU dies with this process, whatever happens to it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    ::dup2(null_in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::execvp(argv[0], argv.data());
    (void)!::write(2, exec_failed.data(), exec_failed.size());
    ::_exit(127);
  }
  ::close(out);
  ::close(null_in);
  if (pid_ < 0) throw std::runtime_error(who + ": fork failed");
}

QemuProcess::~QemuProcess() {
  kill();
}

void QemuProcess::reap(bool block) {
  if (ended_ || pid_ <= 0) return;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  if (r == pid_) {
    ended_ = true;
    ended_at_ = MonotonicClock::read();
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  } else if (r < 0) {
    ended_ = true; // not our child any more (reaped elsewhere): nothing left to kill
    ended_at_ = MonotonicClock::read();
  }
}

bool QemuProcess::running() {
  reap(false);
  return !ended_;
}

void QemuProcess::kill() {
  reap(false);
  if (ended_ || pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  reap(true);
}

Nanos QemuProcess::wall() const {
  return (ended_ ? ended_at_ : MonotonicClock::read()) - started_;
}

std::string QemuProcess::console() const {
  return read_file(console_path_);
}

std::string QemuProcess::output() const {
  return read_file(output_path_);
}

} // namespace ivmc::posix
