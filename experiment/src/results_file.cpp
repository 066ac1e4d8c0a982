// See results_file.hpp.
#include "results_file.hpp"

#include "csv.hpp"
#include "files.hpp"

#include "ivmc/experiment/overrides.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>
#include <stdexcept>

namespace ivmc::experiment::detail {

namespace {

// Whether `column` is a scenario key (so a parameter column of an earlier sweep, not a metric):
// apply_override accepts it with the value that sweep wrote for it.
bool is_scenario_key(const Scenario& base, const std::string& column, const std::string& value) {
  try {
    Scenario s = base;
    apply_override(s, column + "=" + value);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

} // namespace

Existing load_existing(const std::string& path, const Scenario& base, const SweepOptions& o) {
  Existing ex;
  if (!std::filesystem::exists(path)) return ex;
  const std::string text = read_whole_file(path);
  CsvText csv = parse_csv(text);
  if (csv.complete_bytes < text.size()) {
    std::string torn = text.substr(csv.complete_bytes, 80);
    std::replace(torn.begin(), torn.end(), '\n', ' ');
    std::fprintf(stderr,
                 "sweep: warning: %s ends in a torn line (a run was cut short while its row was "
                 "written); removing it, that run is made again: %s%s\n",
                 path.c_str(), torn.c_str(), text.size() - csv.complete_bytes > 80 ? "..." : "");
    if (::truncate(path.c_str(), static_cast<off_t>(csv.complete_bytes)) != 0)
      throw_errno("cannot truncate " + path);
  }
  if (csv.records.empty()) return ex;
  if (csv.records.size() == 1) { // a header and no rows: nothing to keep
    if (::truncate(path.c_str(), 0) != 0) throw_errno("cannot truncate " + path);
    return ex;
  }

  const auto& h = csv.records[0];
  const std::size_t k = o.params.size();
  if (h.size() < 4 || h[0] != kPointColumn || h[1] != kSeedColumn ||
      h[h.size() - 2] != kEventsColumn || h.back() != kWallColumn)
    throw OutputConflict(fmt::format("sweep: {} is not a results.csv of ivmc sweep (header: "
                                     "{}); use another output directory",
                                     path, join(h, ",")));
  // The file's parameter columns: those after `seed` that are scenario keys.
  const auto& first_row = csv.records[1];
  std::vector<std::string> file_params;
  for (std::size_t i = 2; i + 2 < h.size() && i < first_row.size(); ++i) {
    if (!is_scenario_key(base, h[i], first_row[i])) break;
    file_params.push_back(h[i]);
  }
  std::vector<std::string> keys;
  for (const auto& [key, values] : o.params) keys.push_back(key);
  const bool same = h.size() >= 4 + k && std::equal(keys.begin(), keys.end(), h.begin() + 2) &&
                    file_params.size() <= k;
  if (!same) {
    std::vector<std::string> only_file, only_this;
    for (const auto& c : file_params)
      if (std::find(keys.begin(), keys.end(), c) == keys.end()) only_file.push_back(c);
    for (const auto& c : keys)
      if (std::find(file_params.begin(), file_params.end(), c) == file_params.end())
        only_this.push_back(c);
    std::vector<std::string> differ;
    if (!only_file.empty()) differ.push_back("only in results.csv: " + join(only_file, ", "));
    if (!only_this.empty()) differ.push_back("only in this sweep: " + join(only_this, ", "));
    if (differ.empty()) differ.push_back("the same parameters in another order");
    throw OutputConflict(fmt::format(
        "sweep: {} belongs to a different sweep: its results.csv has the parameter columns [{}], "
        "this sweep has [{}] ({}). Use another output directory, or the same parameters in the "
        "same order.",
        std::filesystem::path(path).parent_path().string(), join(file_params, ", "),
        join(keys, ", "), join(differ, "; ")));
  }

  for (std::size_t r = 1; r < csv.records.size(); ++r) {
    const auto& row = csv.records[r];
    const std::string where = fmt::format("{}: row {}", path, r);
    if (row.size() != h.size())
      throw std::runtime_error(
          fmt::format("{} has {} fields, the header {}", where, row.size(), h.size()));
    const auto point = parse_u64(row[0], where + " (point)");
    const auto seed = parse_u64(row[1], where + " (seed)");
    RunKey key{
        std::vector<std::string>(row.begin() + 2, row.begin() + 2 + static_cast<std::ptrdiff_t>(k)),
        seed};
    ex.point_of[std::move(key)] = point;
  }
  ex.header = h;
  return ex;
}

ResultsFile::ResultsFile(const std::string& path, const Existing& existing, std::size_t param_count)
    : path_(path), header_(existing.header) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw_errno("cannot open " + path);
  if (!header_.empty())
    metric_names_.assign(header_.begin() + 2 + static_cast<std::ptrdiff_t>(param_count),
                         header_.end() - 2);
}

ResultsFile::~ResultsFile() {
  ::close(fd_);
}

std::string ResultsFile::append(std::size_t point, std::uint64_t seed,
                                const std::vector<std::string>& param_keys,
                                const std::vector<std::string>& values, const RunResult& r) {
  std::vector<std::string> names;
  for (const auto& m : r.metrics) names.push_back(m.name);
  if (header_.empty()) {
    std::vector<std::string> h = {kPointColumn, kSeedColumn};
    h.insert(h.end(), param_keys.begin(), param_keys.end());
    h.insert(h.end(), names.begin(), names.end());
    h.push_back(kEventsColumn);
    h.push_back(kWallColumn);
    std::set<std::string> seen;
    std::vector<std::string> repeated;
    for (const auto& column : h)
      if (!seen.insert(column).second) repeated.push_back(column);
    if (!repeated.empty())
      return "the runner's metrics repeat the column name(s) " + join(repeated, ", ") +
             " (results.csv has point, seed, the parameters, the metrics, events, wall_s; each "
             "name once)";
    write_all(fd_, csv_line(h));
    if (::fsync(fd_) != 0) throw_errno("fsync " + path_);
    header_ = h;
    metric_names_ = names;
  } else if (names != metric_names_) {
    return fmt::format("its metrics ({}) differ from the columns of results.csv ({})",
                       join(names, ", "), join(metric_names_, ", "));
  }
  std::vector<std::string> row = {std::to_string(point), std::to_string(seed)};
  row.insert(row.end(), values.begin(), values.end());
  for (const auto& m : r.metrics) row.push_back(fmt::format("{}", m.value));
  row.push_back(std::to_string(r.events));
  row.push_back(fmt::format("{:.6f}", r.wall_s));
  write_all(fd_, csv_line(row));                        // one write of the whole line ...
  if (::fsync(fd_) != 0) throw_errno("fsync " + path_); // ... then on disk
  return {};
}

} // namespace ivmc::experiment::detail
