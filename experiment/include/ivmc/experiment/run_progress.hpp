// One long run's progress on stderr, as a sweep shows its own (sweep_progress): simulated (or
// scenario) time done of the total, its rate against the wall clock, and the time left. On a
// terminal one line rewritten in place, at most four times a second, and erased at the end;
// otherwise (a log) a new line every `every_s` seconds. Nothing at all for a run shorter than
// the first interval. A backend calls update() as often as it likes: most calls only read the
// clock.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace ivmc::experiment {

class RunProgress {
public:
  // `label` starts each line ("run"); `total_s` is the scenario's duration.
  RunProgress(std::string label, double total_s, bool in_place, double every_s);
  ~RunProgress(); // finish()
  RunProgress(const RunProgress&) = delete;
  RunProgress& operator=(const RunProgress&) = delete;

  void update(double done_s);
  // Erases the in-place line (a log keeps its lines). Idempotent.
  void finish();

  // The line update() prints for `done_s` after `elapsed_s` of wall time. Exposed for tests.
  std::string line(double done_s, double elapsed_s) const;

private:
  using Clock = std::chrono::steady_clock;

  std::string label_;
  double total_s_;
  bool in_place_;
  double every_s_;
  Clock::time_point t0_, last_;
  std::size_t width_ = 0; // of the in-place line shown, 0: none
};

} // namespace ivmc::experiment
