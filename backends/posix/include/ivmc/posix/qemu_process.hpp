// QEMU as a child process: what the KVM test guests (kvm/qemu.hpp) and the Xen test machine
// (xen/xen_qemu.hpp) launch alike. Each builds its own command line; this starts it and makes
// sure it ends.
//
// QEMU is a direct child started with fork+exec; it dies with its parent (PR_SET_PDEATHSIG),
// and QemuProcess kills it by pid (SIGKILL) and reaps it on kill() and in its destructor: no
// QEMU outlives the process or the test that started it. Its console goes to a file (the
// caller puts `-serial file:CONSOLE` on the command line); QEMU's own stdout and stderr go to
// CONSOLE.qemu. No fmt here, like the rest of backends/posix.
#pragma once

#include "ivmc/core/platform.hpp"

#include <sys/types.h>

#include <string>
#include <vector>

namespace ivmc::posix {

// The qemu-system-x86_64 to use: $IVMC_QEMU, else the one on PATH; empty if there is none.
std::string find_qemu();

class QemuProcess {
public:
  // Removes a stale `console` (it must not be read as this run's), then starts `command`
  // (command[0] is QEMU: a path, or a name looked up on PATH) with stdin from /dev/null.
  // Throws std::runtime_error, prefixed with `who`, if it cannot.
  QemuProcess(std::vector<std::string> command, std::string console, const std::string& who);
  ~QemuProcess(); // kills and reaps QEMU if it still runs
  QemuProcess(const QemuProcess&) = delete;
  QemuProcess& operator=(const QemuProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::vector<std::string>& command() const { return command_; }
  // False once QEMU has ended (reaps it if so).
  bool running();
  // SIGKILL by pid, then reap. Safe to call more than once.
  void kill();
  // QEMU's exit code, or -signal; -1 while it runs (or if it was reaped elsewhere).
  int status() const { return status_; }
  // From the launch to QEMU's end (or to now, while it runs).
  Nanos wall() const;
  Nanos started() const { return started_; }
  // The console file and QEMU's own output as they are now ("" if unreadable).
  std::string console() const;
  std::string output() const;

private:
  void reap(bool block);

  std::vector<std::string> command_;
  std::string console_path_, output_path_;
  pid_t pid_ = -1;
  bool ended_ = false;
  int status_ = -1;
  Nanos started_ = 0, ended_at_ = 0;
};

} // namespace ivmc::posix
