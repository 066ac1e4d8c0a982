// See sweep_progress.hpp.
#include "sweep_progress.hpp"

#include <fmt/format.h>

#include <cstdio>

namespace ivmc::experiment::detail {

Progress::Progress(bool on, std::size_t total, std::size_t done_at_start, double every_s)
    : on_(on), every_s_(every_s), total_(total), start_done_(done_at_start), t0_(Clock::now()) {}

void Progress::update(std::size_t done, bool force) {
  if (!on_) return;
  const auto now = Clock::now();
  const auto interval =
      every_s_ > 0 ? std::chrono::duration<double>(every_s_) : std::chrono::duration<double>(0.25);
  if (!force && shown_ && now - last_ < interval) return;
  if (shown_ && done == shown_done_ && force) return; // nothing new to show
  last_ = now;
  shown_done_ = done;
  const double elapsed = std::chrono::duration<double>(now - t0_).count();
  const std::size_t made = done - start_done_;
  std::string line = fmt::format("sweep: {}/{} runs", done, total_);
  if (made > 0 && elapsed > 0) line += pace(made, elapsed, total_ - done);
  if (every_s_ > 0) { // a log: one whole line each time
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
    shown_ = true;
    return;
  }
  const std::size_t width = line.size();
  if (line.size() < width_) line.append(width_ - line.size(), ' ');
  width_ = width;
  std::fprintf(stderr, "\r%s", line.c_str());
  std::fflush(stderr);
  shown_ = true;
}

void Progress::finish(std::size_t done) {
  if (!on_) return;
  update(done, true);
  if (every_s_ > 0) return; // the line ended already
  std::fputc('\n', stderr);
  std::fflush(stderr);
}

std::string Progress::pace(std::size_t made, double elapsed_s, std::size_t left) {
  const double rate = static_cast<double>(made) / elapsed_s;
  const double left_s = static_cast<double>(left) / rate;
  // Real backends take minutes per run: a rate that would print as "0.0 runs/s" is shown as
  // the time per run instead.
  if (rate >= 0.1) return fmt::format(", {:.1f} runs/s, {} left", rate, duration(left_s));
  return fmt::format(", {} per run, {} left", duration(1 / rate), duration(left_s));
}

std::string Progress::duration(double s) {
  if (s < 120) return fmt::format("{:.0f} s", s);
  if (s < 7200) return fmt::format("{:.0f} min", s / 60);
  return fmt::format("{:.1f} h", s / 3600);
}

} // namespace ivmc::experiment::detail
