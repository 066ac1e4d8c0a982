// A sweep's changes.csv (internal; docs/results.md "changes.csv"): with output.changes, every
// run's membership changes, one row each, after point, seed and the parameters. A run's rows go
// in one write (then fsync) before its results.csv row, so a crash leaves at worst rows of a
// run without a results row: opening the file drops those (that run is made again), and a
// torn last line.
#pragma once

#include "results_file.hpp"

#include "ivmc/experiment/results.hpp"

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace ivmc::experiment::detail {

class ChangesFile {
public:
  // Opens `path` (created at the first append); keeps the rows of the runs in `done` (the runs
  // results.csv holds) when its header is this sweep's, and drops the others.
  ChangesFile(std::string path, const std::vector<std::string>& param_keys,
              const std::set<RunKey>& done);
  ~ChangesFile();
  ChangesFile(const ChangesFile&) = delete;
  ChangesFile& operator=(const ChangesFile&) = delete;
  int fd() const { return fd_; } // -1 until the first append

  // Appends one run's rows (the header first in a new file). Returns the file's size before,
  // for undo().
  std::uint64_t append(std::size_t point, std::uint64_t seed,
                       const std::vector<std::string>& values,
                       const std::vector<ChangeRecord>& changes);
  // Cuts the file back to `size` (a run whose results row was refused).
  void undo(std::uint64_t size);

private:
  void open();

  std::string path_;
  std::vector<std::string> header_;
  int fd_ = -1;
};

} // namespace ivmc::experiment::detail
