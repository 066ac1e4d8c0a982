// The sweep runner: the cross product of parameter values times seeds, each run in a forked
// child (SimGrid keeps one engine per process), at most `jobs` at once. Results land in
// out_dir/results.csv one whole row at a time (one write(), then fsync), so an interrupted or
// crashed sweep keeps every completed row and a re-run resumes it. docs/results.md describes
// the files.
#include "ivmc/sim/run.hpp"

#include "quoted.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>
#include <thread>

#ifndef IVMC_VERSION
#define IVMC_VERSION "unknown"
#endif

namespace ivmc::sim {

SweepInterrupted::SweepInterrupted(std::size_t done, std::size_t total, int signal)
    : std::runtime_error(fmt::format("interrupted by {}: {} of {} runs done",
                                     signal == SIGTERM ? "SIGTERM" : "SIGINT", done, total)),
      done_(done), total_(total), signal_(signal) {}

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// ---------------------------------------------------------------------------------------------
// CSV (RFC 4180 quoting: a field with a comma, quote or line break is quoted, quotes doubled).

std::string csv_field(std::string_view v) {
  if (v.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

std::string csv_line(const std::vector<std::string>& fields) {
  std::string line;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) line += ',';
    line += csv_field(fields[i]);
  }
  return line + '\n';
}

struct CsvText {
  std::vector<std::vector<std::string>> records; // complete records only
  std::size_t complete_bytes = 0; // where the last complete record ends; the rest is torn
};

// Parses whole records (ended by a line break outside quotes); a trailing partial record, the
// trace of a write cut short, is left out and reported through complete_bytes.
CsvText parse_csv(std::string_view text) {
  CsvText out;
  std::vector<std::string> record;
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c != '"') {
        field += c;
      } else if (i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      record.push_back(std::move(field));
      field.clear();
    } else if (c == '\n') {
      record.push_back(std::move(field));
      field.clear();
      out.records.push_back(std::move(record));
      record.clear();
      out.complete_bytes = i + 1;
    } else if (c != '\r') {
      field += c;
    }
  }
  return out;
}

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("write");
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? std::string(sep) : "") + items[i];
  return out;
}

// The first columns and the last ones of every results.csv; parameters and metrics go between.
constexpr const char* kPointColumn = "point";
constexpr const char* kSeedColumn = "seed";
constexpr const char* kEventsColumn = "events";
constexpr const char* kWallColumn = "wall_s";

std::uint64_t parse_u64(const std::string& s, const std::string& where) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty())
    throw std::runtime_error(fmt::format("{}: '{}' is not a non-negative integer", where, s));
  return v;
}

// ---------------------------------------------------------------------------------------------
// Points: the cross product in key order, the first key varying slowest.

class CrossProduct {
public:
  explicit CrossProduct(const SweepOptions& o) : params_(o.params) {
    for (const auto& [key, values] : params_) {
      if (values.empty()) throw std::invalid_argument("sweep: parameter " + key + " has no values");
      if (count_ > (std::size_t{1} << 32) / values.size())
        throw std::invalid_argument("sweep: the cross product has more than 2^32 points");
      count_ *= values.size();
    }
  }
  std::size_t count() const { return count_; }
  std::vector<std::string> values(std::size_t point) const {
    std::vector<std::string> out(params_.size());
    for (std::size_t i = params_.size(); i-- > 0;) {
      const auto& vs = params_[i].second;
      out[i] = vs[point % vs.size()];
      point /= vs.size();
    }
    return out;
  }
  // The point with these values, or count() when one of them is not in its list.
  std::size_t index(const std::vector<std::string>& values) const {
    std::size_t point = 0;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto& vs = params_[i].second;
      const auto it = std::find(vs.begin(), vs.end(), values[i]);
      if (it == vs.end()) return count_;
      point = point * vs.size() + static_cast<std::size_t>(it - vs.begin());
    }
    return point;
  }
  // "channel.notify=atw, membership.period_ms=50", for messages.
  std::string label(std::size_t point) const {
    if (params_.empty()) return "the base scenario";
    const auto vs = values(point);
    std::vector<std::string> parts;
    for (std::size_t i = 0; i < params_.size(); ++i)
      parts.push_back(params_[i].first + "=" + vs[i]);
    return join(parts, ", ");
  }
  Scenario scenario(const Scenario& base, std::size_t point, std::uint64_t seed) const {
    Scenario s = base;
    const auto vs = values(point);
    for (std::size_t i = 0; i < params_.size(); ++i)
      apply_override(s, params_[i].first + "=" + vs[i]);
    s.seed = seed;
    return s;
  }

private:
  std::vector<std::pair<std::string, std::vector<std::string>>> params_;
  std::size_t count_ = 1;
};

void check_options(const SweepOptions& o) {
  std::set<std::string> keys;
  for (const auto& [key, values] : o.params) {
    if (key == kSeedColumn)
      throw std::invalid_argument("sweep: seed is not a parameter; use the seeds count and the "
                                  "first seed");
    if (key == kPointColumn || key == kEventsColumn || key == kWallColumn)
      throw std::invalid_argument("sweep: " + key + " is not a scenario key");
    if (!keys.insert(key).second)
      throw std::invalid_argument("sweep: parameter " + key + " is given twice");
    std::set<std::string> seen;
    for (const auto& v : values) {
      if (!seen.insert(v).second)
        throw std::invalid_argument(
            fmt::format("sweep: parameter {} lists the value '{}' twice", key, v));
    }
  }
  if (o.seeds == 0) throw std::invalid_argument("sweep: seeds must be at least 1");
  if (o.out_dir.empty()) throw std::invalid_argument("sweep: no output directory");
}

// Every point must build and validate before anything runs; the error names the point.
void validate_points(const Scenario& base, const CrossProduct& points, std::uint64_t seed) {
  for (std::size_t p = 0; p < points.count(); ++p) {
    std::vector<ScenarioIssue> issues;
    try {
      issues = validate(points.scenario(base, p, seed));
    } catch (const ScenarioError& e) {
      issues = e.issues();
    }
    if (issues.empty()) continue;
    for (auto& issue : issues)
      issue.where = fmt::format("sweep point {} ({}): {}", p, points.label(p), issue.where);
    throw ScenarioError(std::move(issues));
  }
}

// ---------------------------------------------------------------------------------------------
// The child's report on its pipe: a sequence of netstrings ("<length>:<bytes>,"), so names and
// messages may hold any byte. "ok" N {name value}*N events wall_s "end", or "error" text "end".
// A report without the final "end" was cut short (the child died while writing).

void put(std::string& out, std::string_view s) {
  out += fmt::format("{}:{},", s.size(), s);
}

std::string encode_result(const RunResult& r) {
  std::string out;
  put(out, "ok");
  put(out, std::to_string(r.metrics.size()));
  for (const auto& m : r.metrics) {
    put(out, m.name);
    put(out, fmt::format("{}", m.value)); // fmt's shortest representation: exact round trip
  }
  put(out, std::to_string(r.events));
  put(out, fmt::format("{}", r.wall_s));
  put(out, "end");
  return out;
}

std::string encode_error(std::string_view what) {
  std::string out;
  put(out, "error");
  put(out, what);
  put(out, "end");
  return out;
}

struct ChildReport {
  bool complete = false; // ended with "end"
  bool ok = false;
  RunResult result;
  std::string error; // the exception text the child sent
};

ChildReport decode_report(std::string_view in) {
  ChildReport report;
  std::vector<std::string> items;
  while (!in.empty()) {
    const auto colon = in.find(':');
    std::size_t len = 0;
    if (colon == std::string_view::npos ||
        std::from_chars(in.data(), in.data() + colon, len).ptr != in.data() + colon ||
        in.size() < colon + 1 + len + 1 || in[colon + 1 + len] != ',')
      break;
    items.emplace_back(in.substr(colon + 1, len));
    in.remove_prefix(colon + len + 2);
  }
  if (items.empty()) return report;
  const auto number = [](const std::string& s, auto& v) {
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && end == s.data() + s.size();
  };
  if (items[0] == "error") {
    if (items.size() >= 2) report.error = items[1];
    report.complete = items.size() == 3 && items[2] == "end";
    return report;
  }
  std::size_t n = 0;
  if (items[0] != "ok" || items.size() < 2 || !number(items[1], n) ||
      items.size() != 2 + 2 * n + 3 || items.back() != "end")
    return report;
  for (std::size_t i = 0; i < n; ++i) {
    Metric m{items[2 + 2 * i], 0};
    if (!number(items[3 + 2 * i], m.value)) return report;
    report.result.metrics.push_back(std::move(m));
  }
  if (!number(items[2 + 2 * n], report.result.events) ||
      !number(items[3 + 2 * n], report.result.wall_s))
    return report;
  report.complete = report.ok = true;
  return report;
}

// ---------------------------------------------------------------------------------------------
// Signals: SIGINT and SIGTERM in the parent only set a flag; the loop stops launching, kills its
// children, and run_sweep throws SweepInterrupted. The previous handlers come back at the end.

volatile sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int sig) {
  g_signal = sig;
}

class StopSignals {
public:
  StopSignals() {
    g_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: poll() returns early
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

// A child starts from default dispositions: the caller's handlers (a test framework's, ours)
// belong to the parent, and a crash must show as the signal that caused it.
void reset_child_signals() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL,
                  SIGPIPE, SIGCHLD})
    ::signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

[[noreturn]] void child_main(int fd, const PointRunner& runner, const Scenario& scenario) {
  reset_child_signals();
  std::string report;
  int code = 0;
  try {
    const auto t0 = Clock::now();
    RunResult r = runner(scenario);
    if (r.wall_s <= 0) r.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
    report = encode_result(r);
  } catch (const std::exception& e) {
    report = encode_error(e.what());
    code = 1;
  } catch (...) {
    report = encode_error("an exception that is not a std::exception");
    code = 1;
  }
  std::fflush(nullptr); // whatever the runner printed; the parent flushed its own before fork
  try {
    write_all(fd, report);
  } catch (...) {
    _exit(2);
  }
  _exit(code);
}

// ---------------------------------------------------------------------------------------------
// JSON for meta.json: a tiny hand-written string escaper, since no JSON library is among the
// project's dependencies and meta.json only needs strings, numbers, arrays and objects.

std::string json_string(std::string_view s) {
  return quoted(s);
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

struct Failure {
  std::size_t point = 0;
  std::uint64_t seed = 0;
  std::string what;
};

struct Meta {
  const Scenario* base = nullptr;
  const SweepOptions* options = nullptr;
  const CrossProduct* points = nullptr;
  unsigned jobs = 1;
  std::string started;
  Clock::time_point t0;
  std::string state = "running";
  std::size_t total = 0, done = 0, skipped = 0, made = 0;
  std::vector<Failure> failed;
};

// Written whole to a temporary file, then renamed over meta.json.
void write_meta(const std::string& dir, const Meta& m) {
  std::string j = "{\n";
  j += fmt::format("  \"ivmc_version\": {},\n", json_string(IVMC_VERSION));
#ifdef IVMC_GIT_DESCRIBE
  j += fmt::format("  \"git_describe\": {},\n", json_string(IVMC_GIT_DESCRIBE));
#else
  j += "  \"git_describe\": null,\n";
#endif
  j += fmt::format("  \"state\": {},\n", json_string(m.state));
  j += fmt::format("  \"started_utc\": {},\n", json_string(m.started));
  j += fmt::format("  \"wall_s\": {:.3f},\n",
                   std::chrono::duration<double>(Clock::now() - m.t0).count());
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
  j += "  \"failed\": [";
  for (std::size_t i = 0; i < m.failed.size(); ++i) {
    const auto& f = m.failed[i];
    j += fmt::format("{}\n    {{\"point\": {}, \"seed\": {}, \"params\": {}, \"error\": {}}}",
                     i ? "," : "", f.point, f.seed, json_string(m.points->label(f.point)),
                     json_string(f.what));
  }
  j += m.failed.empty() ? "],\n" : "\n  ],\n";
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

// ---------------------------------------------------------------------------------------------
// Resume: what an existing results.csv already holds.

using RunKey = std::pair<std::vector<std::string>, std::uint64_t>; // point values, seed

struct Existing {
  std::vector<std::string> header;          // empty: no header yet (a new sweep)
  std::map<RunKey, std::uint64_t> point_of; // the runs done, with the point column of their row
};

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
    throw std::runtime_error(fmt::format("sweep: {} is not a results.csv of ivmc sweep (header: "
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
    throw std::runtime_error(fmt::format(
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

// ---------------------------------------------------------------------------------------------
// Progress on stderr: one line rewritten in place, at most four times a second.

class Progress {
public:
  Progress(bool on, std::size_t total, std::size_t done_at_start)
      : on_(on), total_(total), start_done_(done_at_start), t0_(Clock::now()) {}

  void update(std::size_t done, bool force = false) {
    if (!on_) return;
    const auto now = Clock::now();
    if (!force && shown_ && now - last_ < std::chrono::milliseconds(250)) return;
    if (shown_ && done == shown_done_ && force) return; // nothing new to show
    last_ = now;
    shown_done_ = done;
    const double elapsed = std::chrono::duration<double>(now - t0_).count();
    const std::size_t made = done - start_done_;
    std::string line = fmt::format("sweep: {}/{} runs", done, total_);
    if (made > 0 && elapsed > 0) {
      const double rate = static_cast<double>(made) / elapsed;
      const double left = static_cast<double>(total_ - done) / rate;
      line += fmt::format(", {:.1f} runs/s, {} left", rate, duration(left));
    }
    const std::size_t width = line.size();
    if (line.size() < width_) line.append(width_ - line.size(), ' ');
    width_ = width;
    std::fprintf(stderr, "\r%s", line.c_str());
    std::fflush(stderr);
    shown_ = true;
  }

  void finish(std::size_t done) {
    if (!on_) return;
    update(done, true);
    std::fputc('\n', stderr);
    std::fflush(stderr);
  }

private:
  static std::string duration(double s) {
    if (s < 120) return fmt::format("{:.0f} s", s);
    if (s < 7200) return fmt::format("{:.0f} min", s / 60);
    return fmt::format("{:.1f} h", s / 3600);
  }

  bool on_;
  std::size_t total_, start_done_;
  Clock::time_point t0_, last_{};
  bool shown_ = false;
  std::size_t shown_done_ = 0;
  std::size_t width_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The running children. Whatever leaves run_sweep early (an exception, a signal) kills and reaps
// the ones still running.

struct Child {
  pid_t pid = -1;
  int fd = -1;
  std::size_t point = 0;
  std::uint64_t seed = 0;
  std::string report;
  bool eof = false;
};

class Children {
public:
  Children() = default;
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  ~Children() { kill_all(); }

  std::vector<Child>& list() { return list_; }

  void kill_all() {
    for (auto& c : list_) ::kill(c.pid, SIGKILL);
    for (auto& c : list_) {
      while (::waitpid(c.pid, nullptr, 0) < 0 && errno == EINTR) {
      }
      ::close(c.fd);
    }
    list_.clear();
  }

private:
  std::vector<Child> list_;
};

// Reads what is available without blocking; marks end of file.
void drain(Child& c) {
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(c.fd, buf, sizeof buf);
    if (n > 0) {
      c.report.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) c.eof = true;
    if (n < 0 && errno == EINTR) continue;
    return;
  }
}

std::string describe_exit(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = strsignal(sig);
    return fmt::format("killed by signal {} ({})", sig, name ? name : "?");
  }
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  return fmt::format("ended with wait status {}", status);
}

} // namespace

// ---------------------------------------------------------------------------------------------

std::size_t run_sweep(const Scenario& base, const SweepOptions& options,
                      const PointRunner& runner) {
  check_options(options);
  const CrossProduct points(options);
  validate_points(base, points, options.first_seed);

  unsigned jobs = options.jobs ? options.jobs : std::thread::hardware_concurrency();
  if (jobs == 0) jobs = 1;

  const std::string dir = options.out_dir;
  std::filesystem::create_directories(dir);
  const std::string csv_path = dir + "/results.csv";
  Existing existing = load_existing(csv_path, base, options);

  // What is left to do, in (point, seed) order.
  std::vector<std::pair<std::size_t, std::uint64_t>> todo;
  for (std::size_t p = 0; p < points.count(); ++p) {
    const auto values = points.values(p);
    for (std::uint64_t s = 0; s < options.seeds; ++s) {
      const std::uint64_t seed = options.first_seed + s;
      if (!existing.point_of.count({values, seed})) todo.emplace_back(p, seed);
    }
  }
  const std::size_t total = points.count() * options.seeds;
  std::size_t done = total - todo.size();
  std::size_t foreign = 0, renumbered = 0;
  for (const auto& [key, point] : existing.point_of) {
    const std::size_t p = points.index(key.first);
    if (p == points.count() || key.second < options.first_seed ||
        key.second - options.first_seed >= options.seeds) {
      ++foreign;
    } else if (p != point) {
      ++renumbered;
    }
  }
  if (foreign > 0)
    std::fprintf(stderr,
                 "sweep: note: %s holds %zu rows that are not runs of this sweep; they stay\n",
                 csv_path.c_str(), foreign);
  if (renumbered > 0)
    std::fprintf(
        stderr,
        "sweep: note: %zu earlier rows of %s were numbered by other lists of values; their "
        "point column follows those lists\n",
        renumbered, csv_path.c_str());

  Meta meta;
  meta.base = &base;
  meta.options = &options;
  meta.points = &points;
  meta.jobs = jobs;
  meta.started = utc_now();
  meta.t0 = Clock::now();
  meta.total = total;
  meta.done = meta.skipped = done;
  write_meta(dir, meta);

  const int csv_fd = ::open(csv_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (csv_fd < 0) throw_errno("cannot open " + csv_path);
  struct CloseFd {
    int fd;
    ~CloseFd() { ::close(fd); }
  } close_csv{csv_fd};

  std::vector<std::string> header = existing.header;
  std::vector<std::string> metric_names;
  if (!header.empty())
    metric_names.assign(header.begin() + 2 + static_cast<std::ptrdiff_t>(options.params.size()),
                        header.end() - 2);

  // A finished child's row, or the reason it has none.
  const auto land = [&](const Child& c, int status) {
    const ChildReport report = decode_report(c.report);
    const bool exited_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!exited_ok || !report.ok) {
      if (g_signal && WIFSIGNALED(status) &&
          (WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGTERM))
        return; // the terminal's Ctrl-C reached the child too: interrupted, not failed
      std::string what = exited_ok ? "exited without sending a result" : describe_exit(status);
      if (!report.error.empty()) what += ": " + report.error;
      meta.failed.push_back({c.point, c.seed, what});
      return;
    }
    std::vector<std::string> names;
    for (const auto& m : report.result.metrics) names.push_back(m.name);
    if (header.empty()) {
      std::vector<std::string> h = {kPointColumn, kSeedColumn};
      for (const auto& [key, values] : options.params) h.push_back(key);
      h.insert(h.end(), names.begin(), names.end());
      h.push_back(kEventsColumn);
      h.push_back(kWallColumn);
      std::set<std::string> seen;
      std::vector<std::string> repeated;
      for (const auto& column : h)
        if (!seen.insert(column).second) repeated.push_back(column);
      if (!repeated.empty()) {
        meta.failed.push_back({c.point, c.seed,
                               "the runner's metrics repeat the column name(s) " +
                                   join(repeated, ", ") +
                                   " (results.csv has point, seed, the parameters, the metrics, "
                                   "events, wall_s; each name once)"});
        return;
      }
      write_all(csv_fd, csv_line(h));
      if (::fsync(csv_fd) != 0) throw_errno("fsync " + csv_path);
      header = h;
      metric_names = names;
    } else if (names != metric_names) {
      meta.failed.push_back({c.point, c.seed,
                             fmt::format("its metrics ({}) differ from the columns of results.csv "
                                         "({})",
                                         join(names, ", "), join(metric_names, ", "))});
      return;
    }
    std::vector<std::string> row = {std::to_string(c.point), std::to_string(c.seed)};
    for (auto& v : points.values(c.point)) row.push_back(std::move(v));
    for (const auto& m : report.result.metrics) row.push_back(fmt::format("{}", m.value));
    row.push_back(std::to_string(report.result.events));
    row.push_back(fmt::format("{:.6f}", report.result.wall_s));
    write_all(csv_fd, csv_line(row));                           // one write of the whole line ...
    if (::fsync(csv_fd) != 0) throw_errno("fsync " + csv_path); // ... then on disk
    ++done;
    ++meta.made;
  };

  Children children;
  auto& running = children.list();

  // Lands every child that has ended.
  const auto reap_finished = [&] {
    for (std::size_t i = 0; i < running.size();) {
      Child& c = running[i];
      int status = 0;
      pid_t r = ::waitpid(c.pid, &status, WNOHANG);
      if (r < 0 && errno == EINTR) r = 0;
      if (r == 0) {
        ++i;
        continue;
      }
      if (r < 0) status = W_EXITCODE(255, 0); // cannot happen with our own child; be safe
      drain(c);                               // the child is gone: all it wrote is in the pipe
      ::close(c.fd);
      const Child finished = std::move(c);
      running.erase(running.begin() + static_cast<std::ptrdiff_t>(i));
      land(finished, status);
      meta.done = done;
    }
  };

  Progress progress(options.progress, total, done);
  StopSignals stop_signals;
  std::size_t next = 0;
  progress.update(done, true);

  while (!g_signal && (next < todo.size() || !running.empty())) {
    while (!g_signal && running.size() < jobs && next < todo.size()) {
      const auto [point, seed] = todo[next++];
      const Scenario scenario = points.scenario(base, point, seed);
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe");
      std::fflush(nullptr); // or the child would print the parent's buffered output again
      const pid_t pid = ::fork();
      if (pid < 0) {
        const int err = errno;
        ::close(fds[0]);
        ::close(fds[1]);
        errno = err;
        throw_errno("fork");
      }
      if (pid == 0) {
        ::close(fds[0]);
        ::close(csv_fd);
        for (const auto& c : running) ::close(c.fd);
        child_main(fds[1], runner, scenario);
      }
      ::close(fds[1]);
      ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
      running.push_back(Child{pid, fds[0], point, seed, {}, false});
    }

    // Wait for output, an end of file, or a signal; poll briefly while an ended pipe's child
    // has not been reaped yet.
    std::vector<pollfd> pfds;
    bool exiting = false;
    for (const auto& c : running) {
      if (c.eof) {
        exiting = true;
      } else {
        pfds.push_back({c.fd, POLLIN, 0});
      }
    }
    ::poll(pfds.data(), pfds.size(), exiting ? 5 : 100);
    for (auto& c : running)
      if (!c.eof) drain(c);

    reap_finished();
    progress.update(done);
  }
  if (g_signal) reap_finished(); // rows that were ready keep; the rest are killed
  children.kill_all();

  const int sig = g_signal;
  progress.finish(done);
  std::sort(meta.failed.begin(), meta.failed.end(), [](const Failure& a, const Failure& b) {
    return std::pair(a.point, a.seed) < std::pair(b.point, b.seed);
  });
  meta.done = done;
  meta.state = sig ? "interrupted" : meta.failed.empty() ? "complete" : "failed";
  write_meta(dir, meta);

  if (sig) throw SweepInterrupted(done, total, sig);
  if (!meta.failed.empty()) {
    std::string msg = fmt::format("sweep: {} of {} runs failed; {} completed, their rows are in {} "
                                  "(running the same sweep again retries the failed ones):",
                                  meta.failed.size(), todo.size(), meta.made, csv_path);
    for (const auto& f : meta.failed)
      msg += fmt::format("\n  point {} ({}), seed {}: {}", f.point, points.label(f.point), f.seed,
                         f.what);
    throw std::runtime_error(msg);
  }
  return meta.made;
}

std::vector<std::map<std::string, std::string>> read_results(const std::string& csv_path) {
  const CsvText csv = parse_csv(read_whole_file(csv_path));
  std::vector<std::map<std::string, std::string>> rows;
  if (csv.records.empty()) return rows;
  const auto& h = csv.records[0];
  if (h.size() < 4 || h[0] != kPointColumn || h[1] != kSeedColumn)
    throw std::runtime_error(csv_path + " is not a results.csv of ivmc sweep");
  std::vector<std::pair<std::pair<std::uint64_t, std::uint64_t>, std::size_t>> order;
  for (std::size_t r = 1; r < csv.records.size(); ++r) {
    const auto& rec = csv.records[r];
    const std::string where = fmt::format("{}: row {}", csv_path, r);
    if (rec.size() != h.size())
      throw std::runtime_error(
          fmt::format("{} has {} fields, the header {}", where, rec.size(), h.size()));
    std::map<std::string, std::string> row;
    for (std::size_t i = 0; i < h.size(); ++i) row[h[i]] = rec[i];
    order.push_back({{parse_u64(rec[0], where), parse_u64(rec[1], where)}, rows.size()});
    rows.push_back(std::move(row));
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::map<std::string, std::string>> sorted;
  sorted.reserve(rows.size());
  for (const auto& [key, i] : order) sorted.push_back(std::move(rows[i]));
  return sorted;
}

} // namespace ivmc::sim
