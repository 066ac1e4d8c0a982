// A sweep's results.csv (internal; docs/results.md): what an existing file already holds (the
// resume), and appending rows one whole line at a time (one write(), then fsync), so that an
// interrupted or crashed sweep keeps every completed row.
#pragma once

#include "ivmc/experiment/results.hpp"
#include "ivmc/experiment/scenario.hpp"
#include "ivmc/experiment/sweep.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace ivmc::experiment::detail {

using RunKey = std::pair<std::vector<std::string>, std::uint64_t>; // point values, seed

struct Existing {
  std::vector<std::string> header;          // empty: no header yet (a new sweep)
  std::map<RunKey, std::uint64_t> point_of; // the runs done, with the point column of their row
};

// What `path` holds, if it exists. Cuts a torn last line away (with a warning), empties a file
// with a header and no rows, and throws std::runtime_error when the file belongs to a sweep
// over other parameters (or is not a results.csv at all).
Existing load_existing(const std::string& path, const Scenario& base, const SweepOptions& o);

class ResultsFile {
public:
  // Opens `path` for appending; `existing` is what load_existing found in it.
  ResultsFile(const std::string& path, const Existing& existing, std::size_t param_count);
  ~ResultsFile();
  ResultsFile(const ResultsFile&) = delete;
  ResultsFile& operator=(const ResultsFile&) = delete;
  int fd() const { return fd_; }

  // Appends one run's row (first the header, in a new file, from `param_keys` and the result's
  // metric names). Returns why it cannot when the result's metrics do not fit the columns
  // (repeated names, other metrics than the file's), else "".
  std::string append(std::size_t point, std::uint64_t seed,
                     const std::vector<std::string>& param_keys,
                     const std::vector<std::string>& values, const RunResult& r);

private:
  std::string path_;
  int fd_ = -1;
  std::vector<std::string> header_;
  std::vector<std::string> metric_names_;
};

} // namespace ivmc::experiment::detail
