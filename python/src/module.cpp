// ivmc._ivmc: the C++ side of the `ivmc` Python package (python/ivmc/). Scenarios cross this
// boundary as TOML text (the Python side turns dicts into TOML and back), so every scenario a
// Python user builds goes through the same loader, overrides and checks as the command line.
//
// Runs happen in forked children: SimGrid keeps one engine per process, and a notebook (or a
// Dask worker) is a long-lived process that runs many points.
#include "ivmc/sim/run.hpp"
#include "ivmc/sim/scenario.hpp"

#include <fmt/format.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;
namespace sim = ivmc::sim;

namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

// --- Scenarios --------------------------------------------------------------------------------

// A scenario written by to_toml (the package's canonical form of every scenario it holds), read
// back without its items' source lines: those are lines of the canonical text, which the user
// never saw, so problems found later are reported at key paths ("workload[1].to").
sim::Scenario parse_canonical(const std::string& toml) {
  sim::Scenario s = sim::parse_scenario(toml, "<scenario>");
  for (auto& vm : s.vms) vm.line = 0;
  for (auto& w : s.workloads) w.line = 0;
  for (auto& e : s.events) e.line = 0;
  for (auto& g : s.generators) g.line = 0;
  return s;
}

// The scenario a point runs: the canonical `toml`, then each `key=value` override in order, then
// the seed; the same order as ivmc run and ivmc sweep. Throws ScenarioError if the result is
// invalid.
sim::Scenario build_point(const std::string& toml, const Pairs& overrides,
                          std::optional<std::uint64_t> seed) {
  sim::Scenario s = parse_canonical(toml);
  for (const auto& [key, value] : overrides) sim::apply_override(s, key + "=" + value);
  if (seed) s.seed = *seed;
  if (auto issues = sim::validate(s); !issues.empty()) throw sim::ScenarioError(std::move(issues));
  return s;
}

std::vector<std::tuple<std::string, std::string, std::string>> preset_rows() {
  std::vector<std::tuple<std::string, std::string, std::string>> out;
  for (auto& p : sim::presets()) out.emplace_back(p.name, p.system, p.summary);
  return out;
}

// --- One point in a child process -------------------------------------------------------------
//
// The child sends its result over a pipe as a flat byte record: a status byte ('k' ok, 'e'
// error); ok: u64 metric count, then per metric u32 name length, name, f64 value; u64 events;
// f64 wall_s; u32 summary length, summary. error: u32 length, text. Both run the same binary, so
// native byte order and layout are fine.

class Writer {
public:
  template <class T>
  void value(T v) {
    bytes_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void text(const std::string& s) {
    value(static_cast<std::uint32_t>(s.size()));
    bytes_ += s;
  }
  const std::string& bytes() const { return bytes_; }

private:
  std::string bytes_;
};

class Reader {
public:
  explicit Reader(const std::string& bytes) : bytes_(bytes) {}
  template <class T>
  T value() {
    T v{};
    need(sizeof v);
    std::memcpy(&v, bytes_.data() + at_, sizeof v);
    at_ += sizeof v;
    return v;
  }
  std::string text() {
    const auto n = value<std::uint32_t>();
    need(n);
    std::string s = bytes_.substr(at_, n);
    at_ += n;
    return s;
  }

private:
  void need(std::size_t n) const {
    if (bytes_.size() - at_ < n) throw std::length_error("truncated");
  }
  const std::string& bytes_;
  std::size_t at_ = 0;
};

void write_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(3);
    done += static_cast<std::size_t>(n);
  }
}

[[noreturn]] void child(int fd, const sim::Scenario& scenario) {
  // Default dispositions: the interpreter's handlers belong to the parent (its SIGINT handler
  // would only set a flag that nothing in this process reads).
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD}) ::signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  Writer w;
  int code = 0;
  try {
    const auto t0 = std::chrono::steady_clock::now();
    sim::RunResult r = sim::run_scenario(scenario);
    if (r.wall_s <= 0)
      r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    w.value('k');
    w.value(static_cast<std::uint64_t>(r.metrics.size()));
    for (const auto& m : r.metrics) {
      w.text(m.name);
      w.value(m.value);
    }
    w.value(static_cast<std::uint64_t>(r.events));
    w.value(r.wall_s);
    w.text(r.summary);
  } catch (const std::exception& e) {
    w = Writer();
    w.value('e');
    w.text(e.what());
    code = 1;
  } catch (...) {
    w = Writer();
    w.value('e');
    w.text("an exception that is not a std::exception");
    code = 1;
  }
  std::fflush(nullptr);
  write_all(fd, w.bytes());
  _exit(code);
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    const char* name = strsignal(WTERMSIG(status));
    return fmt::format("killed by signal {} ({})", WTERMSIG(status), name ? name : "?");
  }
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  return fmt::format("ended with wait status {}", status);
}

// Kills and reaps a child when the parent leaves early (an interrupt, an error).
class ChildGuard {
public:
  explicit ChildGuard(pid_t pid) : pid_(pid) {}
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  ~ChildGuard() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  // Waits for the child's end; returns its wait status.
  int wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0) {
      if (errno != EINTR) throw std::runtime_error(fmt::format("waitpid: {}", strerror(errno)));
    }
    pid_ = -1;
    return status;
  }

private:
  pid_t pid_;
};

struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

// Runs `scenario` in a forked child and returns what it reported. The GIL is released while the
// child runs; every 100 ms the parent takes it back to let a pending KeyboardInterrupt (or any
// signal handler's exception) through, killing the child.
py::dict run_in_child(const sim::Scenario& scenario) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw std::runtime_error(fmt::format("pipe: {}", strerror(errno)));
  FdGuard read_end{fds[0]};
  std::fflush(nullptr); // or the child would print the parent's buffered output again
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[1]);
    throw std::runtime_error(fmt::format("fork: {}", strerror(errno)));
  }
  if (pid == 0) {
    ::close(fds[0]);
    child(fds[1], scenario);
  }
  ::close(fds[1]);
  ChildGuard guard(pid);

  std::string report;
  for (;;) {
    bool eof = false;
    {
      py::gil_scoped_release release;
      pollfd p{read_end.fd, POLLIN, 0};
      const int ready = ::poll(&p, 1, 100);
      if (ready > 0) {
        char buf[65536];
        const ssize_t n = ::read(read_end.fd, buf, sizeof buf);
        if (n > 0) report.append(buf, static_cast<std::size_t>(n));
        if (n == 0) eof = true;
        if (n < 0 && errno != EINTR && errno != EAGAIN)
          throw std::runtime_error(fmt::format("read: {}", strerror(errno)));
      }
    }
    if (eof) break;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set(); // the guard kills the child
  }
  int status = 0;
  {
    py::gil_scoped_release release;
    status = guard.wait();
  }

  try {
    Reader r(report);
    const char kind = report.empty() ? '\0' : r.value<char>();
    if (kind == 'e') throw std::runtime_error("the run failed: " + r.text());
    if (kind == 'k') {
      py::list metrics;
      const auto n = r.value<std::uint64_t>();
      for (std::uint64_t i = 0; i < n; ++i) {
        std::string name = r.text();
        const auto value = r.value<double>();
        metrics.append(py::make_tuple(name, value));
      }
      py::dict out;
      out["metrics"] = metrics;
      out["events"] = r.value<std::uint64_t>();
      out["wall_s"] = r.value<double>();
      out["summary"] = r.text();
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return out;
    }
  } catch (const std::length_error&) {
  }
  throw std::runtime_error("the run's process " + describe_status(status) +
                           " without sending a complete result");
}

// --- Sweeps -----------------------------------------------------------------------------------

std::size_t sweep(const std::string& toml,
                  const std::vector<std::pair<std::string, std::vector<std::string>>>& params,
                  std::uint32_t seeds, std::optional<std::uint64_t> first_seed, unsigned jobs,
                  const std::string& out_dir, bool progress) {
  const sim::Scenario base = parse_canonical(toml);
  sim::SweepOptions o;
  o.params = params;
  o.seeds = seeds;
  o.first_seed = first_seed.value_or(base.seed);
  o.jobs = jobs;
  o.out_dir = out_dir;
  o.progress = progress;
  py::gil_scoped_release release;
  return sim::run_sweep(base, o);
}

} // namespace

PYBIND11_MODULE(_ivmc, m) {
  m.doc() = "The C++ core of the ivmc package (scenario loader, runs, sweeps); use `ivmc`.";

  // sim::ScenarioError becomes ivmc.ScenarioError (defined in Python, with `.issues`).
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const sim::ScenarioError& e) {
      py::list issues;
      for (const auto& i : e.issues()) issues.append(py::make_tuple(i.where, i.what));
      const py::object cls = py::module_::import("ivmc").attr("ScenarioError");
      PyErr_SetObject(cls.ptr(), cls(issues).ptr());
    } catch (const sim::SweepInterrupted& e) {
      PyErr_SetString(PyExc_KeyboardInterrupt, e.what());
    }
  });

  m.def(
      "canonical_toml",
      [](const std::string& toml, const std::string& origin) {
        return sim::to_toml(sim::parse_scenario(toml, origin));
      },
      py::arg("toml"), py::arg("origin"),
      "Parses and checks a scenario's TOML text (`origin` names it in messages) and returns it "
      "as to_toml writes it (the canonical form). Raises ivmc.ScenarioError.");
  m.def(
      "load_toml",
      [](const std::string& arg) { return sim::to_toml(sim::load_scenario_argument(arg)); },
      py::arg("arg"),
      "A scenario argument (a file, \"default\" or \"preset:NAME\") in canonical form. Raises "
      "ivmc.ScenarioError.");
  m.def(
      "point_toml",
      [](const std::string& toml, const Pairs& overrides, std::optional<std::uint64_t> seed) {
        return sim::to_toml(build_point(toml, overrides, seed));
      },
      py::arg("toml"), py::arg("overrides") = Pairs{}, py::arg("seed") = std::nullopt,
      "A canonical scenario with `key=value` overrides (in order) and the seed applied, checked, "
      "in canonical form. Raises ivmc.ScenarioError.");
  m.def("presets", &preset_rows, "The embedded presets as (name, system, summary).");
  m.def(
      "preset_text", [](const std::string& name) { return sim::preset_text(name); },
      py::arg("name"), "A preset's TOML fragment, or None.");
  m.def("default_scenario_text", &sim::default_scenario_text,
        "The embedded default scenario's TOML (scenarios/default.toml).");
  m.def(
      "run_point",
      [](const std::string& toml, const Pairs& overrides, std::optional<std::uint64_t> seed) {
        return run_in_child(build_point(toml, overrides, seed));
      },
      py::arg("toml"), py::arg("overrides") = Pairs{}, py::arg("seed") = std::nullopt,
      "Builds the point as point_toml does and runs it in a forked child process. Returns "
      "{'metrics': [(name, value)], 'events', 'wall_s', 'summary'}.");
  m.def("sweep", &sweep, py::arg("toml"), py::arg("params"), py::arg("seeds"),
        py::arg("first_seed"), py::arg("jobs"), py::arg("out_dir"), py::arg("progress") = false,
        "ivmc::sim::run_sweep of a canonical scenario into out_dir (results.csv, meta.json); "
        "returns the runs made.");
  m.def("read_results", &sim::read_results, py::arg("csv_path"),
        "The rows of a results.csv as column -> text, sorted by point and seed.");
}
