// A sweep's progress on stderr (internal): runs done, rate, time left. On a terminal one line
// rewritten in place, at most four times a second; into a log (every_s > 0) a new line every
// every_s seconds and at the end.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace ivmc::experiment::detail {

class Progress {
public:
  Progress(bool on, std::size_t total, std::size_t done_at_start, double every_s = 0);
  void update(std::size_t done, bool force = false);
  void finish(std::size_t done);
  // What follows "sweep: D/T runs" once `made` runs took `elapsed_s`: the rate (runs/s) and the
  // time left for `left` runs, or the time per run when runs take more than 10 s.
  static std::string pace(std::size_t made, double elapsed_s, std::size_t left);

private:
  using Clock = std::chrono::steady_clock;
  static std::string duration(double s);

  bool on_;
  double every_s_; // > 0: lines for a log
  std::size_t total_, start_done_;
  Clock::time_point t0_, last_{};
  bool shown_ = false;
  std::size_t shown_done_ = 0;
  std::size_t width_ = 0;
};

} // namespace ivmc::experiment::detail
