// See changes_file.hpp.
#include "changes_file.hpp"

#include "csv.hpp"
#include "files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

namespace ivmc::experiment::detail {

ChangesFile::ChangesFile(std::string path, const std::vector<std::string>& param_keys,
                         const std::set<RunKey>& done)
    : path_(std::move(path)) {
  header_ = {kPointColumn, kSeedColumn};
  header_.insert(header_.end(), param_keys.begin(), param_keys.end());
  header_.insert(header_.end(), change_columns().begin(), change_columns().end());
  if (!std::filesystem::exists(path_)) return;
  const CsvText csv = parse_csv(read_whole_file(path_));
  const std::size_t k = param_keys.size();
  std::string kept;
  std::size_t dropped = csv.records.empty() ? 0 : csv.records.size() - 1;
  if (!csv.records.empty() && csv.records[0] == header_) {
    dropped = 0;
    for (std::size_t r = 1; r < csv.records.size(); ++r) {
      const auto& row = csv.records[r];
      bool keep = row.size() == header_.size();
      if (keep) {
        try {
          RunKey key{std::vector<std::string>(row.begin() + 2,
                                              row.begin() + 2 + static_cast<std::ptrdiff_t>(k)),
                     parse_u64(row[1], path_)};
          keep = done.count(key) != 0;
        } catch (const std::runtime_error&) {
          keep = false;
        }
      }
      if (keep)
        kept += csv_line(row);
      else
        ++dropped;
    }
  }
  if (dropped > 0)
    std::fprintf(stderr,
                 "sweep: note: dropping %zu rows of %s whose runs have no results.csv row (cut "
                 "short); those runs are made again\n",
                 dropped, path_.c_str());
  if (kept.empty()) { // nothing of this sweep's: start the file anew
    std::filesystem::remove(path_);
    return;
  }
  // The rows kept, under the header, replace the file whole (a temporary file renamed over it).
  const std::string tmp = path_ + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw_errno("cannot write " + tmp);
  try {
    write_all(fd, csv_line(header_) + kept);
    if (::fsync(fd) != 0) throw_errno("fsync " + tmp);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) throw_errno("cannot rename " + tmp);
  open();
}

ChangesFile::~ChangesFile() {
  if (fd_ >= 0) ::close(fd_);
}

void ChangesFile::open() {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw_errno("cannot open " + path_);
}

std::uint64_t ChangesFile::append(std::size_t point, std::uint64_t seed,
                                  const std::vector<std::string>& values,
                                  const std::vector<ChangeRecord>& changes) {
  std::string text;
  if (fd_ < 0) {
    open();
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw_errno("fstat " + path_);
    if (st.st_size == 0) text = csv_line(header_);
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) throw_errno("fstat " + path_);
  for (const auto& c : changes) {
    std::vector<std::string> row = {std::to_string(point), std::to_string(seed)};
    row.insert(row.end(), values.begin(), values.end());
    const auto fields = change_fields(c);
    row.insert(row.end(), fields.begin(), fields.end());
    text += csv_line(row);
  }
  if (!text.empty()) {
    write_all(fd_, text);                                 // one write for the run's rows ...
    if (::fsync(fd_) != 0) throw_errno("fsync " + path_); // ... then on disk
  }
  return static_cast<std::uint64_t>(st.st_size);
}

void ChangesFile::undo(std::uint64_t size) {
  if (fd_ >= 0 && ::ftruncate(fd_, static_cast<off_t>(size)) != 0)
    throw_errno("cannot truncate " + path_);
}

} // namespace ivmc::experiment::detail
