// Files of killed kvm runs: see dead_run_files.hpp.
#include "ivmc/kvm/dead_run_files.hpp"

#include <signal.h>
#include <sys/types.h>

#include <cerrno>
#include <charconv>
#include <filesystem>
#include <limits>
#include <system_error>

namespace ivmc::kvm {

namespace {

bool ends_with_one_of(const std::string& name, const std::vector<std::string_view>& suffixes) {
  if (suffixes.empty()) return true;
  for (const std::string_view s : suffixes)
    if (name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0)
      return true;
  return false;
}

} // namespace

std::size_t remove_files_of_dead_runs(const std::string& dir, std::string_view prefix,
                                      const std::vector<std::string_view>& suffixes) {
  namespace fs = std::filesystem;
  std::size_t removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0 || !ends_with_one_of(name, suffixes)) continue;
    const char* first = name.data() + prefix.size();
    const char* last = name.data() + name.size();
    long long pid = 0;
    const auto [next, err] = std::from_chars(first, last, pid);
    // "<pid>-": a positive pid that fits pid_t, then a dash.
    if (err != std::errc() || next == last || *next != '-' || pid <= 0 ||
        pid > std::numeric_limits<pid_t>::max())
      continue;
    std::error_code type_ec;
    if (it->is_directory(type_ec)) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue; // alive, or not ours
    std::error_code rm_ec;
    if (fs::remove(it->path(), rm_ec)) ++removed;
  }
  return removed;
}

} // namespace ivmc::kvm
