// One run in a forked child process, with one encoding of its result: the simulator keeps one
// SimGrid engine per process, a real backend's crash must not take its caller down, and a
// notebook or a sweep runs many points. Used by sweeps (sweep.hpp) and by Python alike.
//
// The child sends its report on a pipe as netstrings ("<length>:<bytes>,"), so names and texts
// may hold any byte: "ok" N {name value}*N events wall_s summary "end", or "error" text "end".
// A report without the final "end" was cut short (the child died while writing).
#pragma once

#include "ivmc/experiment/results.hpp"

#include <sys/types.h>

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ivmc::experiment {

// The report a child sends.
std::string encode_result(const RunResult& r);
std::string encode_error(std::string_view what);

// A report as received: `complete` when it ended with "end"; then either `result` (ok) or the
// child's `error`.
struct ChildReport {
  bool complete = false;
  bool ok = false;
  RunResult result;
  std::string error;
};
ChildReport decode_report(std::string_view bytes);

// A wait status for people: "exited with status 1", "killed by signal 11 (SIGSEGV:
// Segmentation fault)".
std::string describe_exit(int wait_status);

// One child running `work`. The child starts from default signal dispositions (a crash shows as
// its signal), closes `close_in_child`, runs `work`, sends its report and exits (_exit: the
// parent's atexit handlers and buffers are not the child's). The destructor kills and reaps a
// child still running.
class ChildRun {
public:
  using Work = std::function<RunResult()>;
  explicit ChildRun(const Work& work, std::span<const int> close_in_child = {});
  ~ChildRun();
  ChildRun(const ChildRun&) = delete;
  ChildRun& operator=(const ChildRun&) = delete;

  pid_t pid() const { return pid_; }
  int fd() const { return fd_; }          // the report's read end (non-blocking)
  bool at_eof() const { return eof_; }    // the child closed its end (it is ending)
  bool reaped() const { return reaped_; } // wait_status() is known

  // Reads what the child has sent so far, without blocking.
  void read_available();
  // Reaps the child if it has ended, without blocking (reading what is left of its report);
  // true once reaped.
  bool try_reap();
  // SIGKILL, then reap.
  void kill();

  int wait_status() const { return status_; }
  // After reaping: the result, if the child exited 0 with a complete report.
  std::optional<RunResult> result() const;
  // After reaping, when there is no result: why ("exited with status 1: <the exception's text>",
  // "killed by signal 6 (SIGABRT: Aborted)", "exited with status 0 without sending a result").
  std::string failure() const;

private:
  pid_t pid_ = -1;
  int fd_ = -1;
  bool eof_ = false;
  bool reaped_ = false;
  int status_ = 0;
  std::string report_;
};

// Runs `work` in a child and returns its result, or throws std::runtime_error("the run failed:
// " + failure()). While waiting, `between` is called about every 100 ms (Python lets a pending
// KeyboardInterrupt through there); an exception from it kills the child and propagates.
RunResult run_in_child(const ChildRun::Work& work, const std::function<void()>& between = {});

} // namespace ivmc::experiment
