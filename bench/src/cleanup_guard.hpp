// What an interrupted bench must not leave behind: a daemon it started (iox-roudi), the
// processes measuring through it, and files (shared memory, sockets, logs). Each is registered
// while it exists; SIGINT, SIGTERM, SIGHUP or SIGQUIT delivered to the bench first signals every
// registered child and unlinks every registered file, then ends the bench as that signal would
// have. Internal to bench/.
#pragma once

#include <sys/types.h>

#include <string>

namespace ivmc::bench {

class CleanupGuard {
public:
  // Registers `pid` (0: none), to be sent `signal` if the bench is interrupted, and `file` (may
  // be empty) to be unlinked then. Throws when all slots are taken.
  CleanupGuard(pid_t pid, int signal, const std::string& file = {});
  // A file alone.
  explicit CleanupGuard(const std::string& file) : CleanupGuard(0, 0, file) {}
  ~CleanupGuard(); // unregisters; the owner has ended the child and removed the file by then
  CleanupGuard(const CleanupGuard&) = delete;
  CleanupGuard& operator=(const CleanupGuard&) = delete;

private:
  int slot_;
};

// For a forked child: the kernel sends it `signal` when the bench dies (even by SIGKILL, which
// no handler sees). Call in the child right after fork(); returns false if the bench is
// already gone.
bool die_with_parent(int signal);

} // namespace ivmc::bench
