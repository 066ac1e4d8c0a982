// See run_progress.hpp.
#include "ivmc/experiment/run_progress.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

namespace ivmc::experiment {

namespace {

std::string duration(double s) {
  if (s < 120) return fmt::format("{:.0f} s", s);
  if (s < 7200) return fmt::format("{:.0f} min", s / 60);
  return fmt::format("{:.1f} h", s / 3600);
}

} // namespace

RunProgress::RunProgress(std::string label, double total_s, bool in_place, double every_s)
    : label_(std::move(label)), total_s_(total_s), in_place_(in_place),
      every_s_(in_place ? 0.25 : std::max(every_s, 0.01)), t0_(Clock::now()), last_(t0_) {}

RunProgress::~RunProgress() {
  finish();
}

std::string RunProgress::line(double done_s, double elapsed_s) const {
  const double share = total_s_ > 0 ? std::clamp(done_s / total_s_, 0.0, 1.0) : 1.0;
  std::string text =
      fmt::format("{}: {:.4g}/{:.4g} s simulated ({:.0f}%)", label_, done_s, total_s_, share * 100);
  if (elapsed_s > 0 && done_s > 0) {
    const double rate = done_s / elapsed_s; // simulated seconds per wall second
    text += fmt::format(", {:.3g} s simulated/s, {} left", rate,
                        duration(std::max(0.0, total_s_ - done_s) / rate));
  }
  return text;
}

void RunProgress::update(double done_s) {
  const auto now = Clock::now();
  // The first line only after a whole interval (in place: a second), so short runs stay quiet.
  const double wait = in_place_ && width_ == 0 ? 1.0 : every_s_;
  if (std::chrono::duration<double>(now - last_).count() < wait) return;
  last_ = now;
  std::string text = line(done_s, std::chrono::duration<double>(now - t0_).count());
  if (!in_place_) {
    std::fprintf(stderr, "%s\n", text.c_str());
    std::fflush(stderr);
    return;
  }
  const std::size_t width = text.size();
  if (text.size() < width_) text.append(width_ - text.size(), ' ');
  width_ = width;
  std::fprintf(stderr, "\r%s", text.c_str());
  std::fflush(stderr);
}

void RunProgress::finish() {
  if (!in_place_ || width_ == 0) return;
  std::fprintf(stderr, "\r%s\r", std::string(width_, ' ').c_str());
  std::fflush(stderr);
  width_ = 0;
}

} // namespace ivmc::experiment
