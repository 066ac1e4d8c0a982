// See sweep_meta.hpp. JSON by hand: no JSON library is among the project's dependencies, and
// meta.json only needs strings, numbers, arrays and objects.
#include "sweep_meta.hpp"

#include "files.hpp"
#include "git_describe.hpp"
#include "quoted.hpp"

#include "ivmc/experiment/to_toml.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <string_view>
#include <vector>

#ifndef IVMC_VERSION
#define IVMC_VERSION "unknown"
#endif

namespace ivmc::experiment::detail {

namespace {

std::string json_string(std::string_view s) {
  return quoted(s);
}

} // namespace

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void write_meta(const std::string& dir, const Meta& m) {
  std::string j = "{\n";
  j += fmt::format("  \"ivmc_version\": {},\n", json_string(IVMC_VERSION));
  const std::string_view describe = git_describe();
  j += fmt::format("  \"git_describe\": {},\n",
                   describe.empty() ? std::string("null") : json_string(describe));
  j += fmt::format("  \"backend\": {},\n", json_string(m.backend));
  j += fmt::format("  \"state\": {},\n", json_string(m.state));
  j += fmt::format("  \"started_utc\": {},\n", json_string(m.started));
  j += fmt::format("  \"wall_s\": {:.3f},\n",
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - m.t0).count());
  j += "  \"params\": [";
  for (std::size_t i = 0; i < m.options->params.size(); ++i) {
    const auto& [key, values] = m.options->params[i];
    std::vector<std::string> vs;
    for (const auto& v : values) vs.push_back(json_string(v));
    j += fmt::format("{}\n    {{\"key\": {}, \"values\": [{}]}}", i ? "," : "", json_string(key),
                     join(vs, ", "));
  }
  j += m.options->params.empty() ? "],\n" : "\n  ],\n";
  j += fmt::format("  \"points\": {},\n", m.points->count());
  j += fmt::format("  \"seeds\": {},\n", m.options->seeds);
  j += fmt::format("  \"first_seed\": {},\n", m.options->first_seed);
  j += fmt::format("  \"jobs\": {},\n", m.jobs);
  j += fmt::format("  \"runs_total\": {},\n", m.total);
  j += fmt::format("  \"runs_done\": {},\n", m.done);
  j += fmt::format("  \"runs_already_done_at_start\": {},\n", m.skipped);
  j += fmt::format("  \"runs_made\": {},\n", m.made);
  // A list of runs not made, each with its point, seed, parameters and `why` (the text).
  auto runs = [&](std::string_view key, const std::vector<Failure>& list, std::string_view why) {
    j += fmt::format("  \"{}\": [", key);
    for (std::size_t i = 0; i < list.size(); ++i) {
      const auto& f = list[i];
      j += fmt::format("{}\n    {{\"point\": {}, \"seed\": {}, \"params\": {}, \"{}\": {}}}",
                       i ? "," : "", f.point, f.seed, json_string(m.points->label(f.point)), why,
                       json_string(f.what));
    }
    j += list.empty() ? "],\n" : "\n  ],\n";
  };
  runs("failed", m.failed, "error");
  // Runs not made because the backend refuses their seed (issues one per line).
  j += fmt::format("  \"runs_refused\": {},\n", m.refused.size());
  runs("refused", m.refused, "issues");
  j += fmt::format("  \"scenario_fingerprint\": {},\n", json_string(m.fingerprint));
  j += fmt::format("  \"scenario_toml\": {}\n", json_string(to_toml(*m.base)));
  j += "}\n";

  const std::string path = dir + "/meta.json", tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw_errno("cannot write " + tmp);
  try {
    write_all(fd, j);
    ::fsync(fd);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw_errno("cannot rename " + tmp);
}

} // namespace ivmc::experiment::detail
