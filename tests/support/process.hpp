// Child processes for the real-process tests: fork a body, reap it with a deadline. Needs no
// platform (core-only tests use it too).
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <thread>

namespace ivmc::test {

// Forks; the child runs `body` and exits with its return value (2 if it threw).
inline pid_t spawn(const std::function<int()>& body) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int rc = 2;
    try {
      rc = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child %d: %s\n", getpid(), e.what());
    }
    std::fflush(nullptr);
    _exit(rc); // skip destructors of objects inherited from the parent
  }
  return pid;
}

// Waits for `pid`; kills it after `timeout_s`. Returns its exit status, or -signal, or -999 if
// it had to be killed for hanging.
inline int reap(pid_t pid, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -999;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return -WTERMSIG(status);
}

} // namespace ivmc::test
