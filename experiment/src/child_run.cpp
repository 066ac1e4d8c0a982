// See child_run.hpp.
#include "ivmc/experiment/child_run.hpp"

#include "files.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace ivmc::experiment {
namespace {

void put(std::string& out, std::string_view s) {
  out += fmt::format("{}:{},", s.size(), s);
}

// A child starts from default dispositions: the caller's handlers (a test framework's, the
// sweep's, the Python interpreter's) belong to the parent, and a crash must show as the signal
// that caused it.
void reset_child_signals() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL,
                  SIGPIPE, SIGCHLD})
    ::signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

[[noreturn]] void child_main(int fd, const ChildRun::Work& work) {
  reset_child_signals();
  std::string report;
  int code = 0;
  try {
    const auto t0 = std::chrono::steady_clock::now();
    RunResult r = work();
    if (r.wall_s <= 0)
      r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    report = encode_result(r);
  } catch (const std::exception& e) {
    report = encode_error(e.what());
    code = 1;
  } catch (...) {
    report = encode_error("an exception that is not a std::exception");
    code = 1;
  }
  std::fflush(nullptr); // whatever the work printed; the parent flushed its own before fork
  try {
    detail::write_all(fd, report);
  } catch (...) {
    _exit(2);
  }
  _exit(code);
}

} // namespace

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
  put(out, r.summary);
  put(out, r.changes_recorded ? "1" : "0");
  put(out, std::to_string(r.changes.size()));
  for (const auto& c : r.changes)
    for (const auto& f : change_fields(c)) put(out, f);
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

ChildReport decode_report(std::string_view in) {
  ChildReport report;
  std::vector<std::string> items;
  while (!in.empty()) {
    const auto colon = in.find(':');
    std::size_t len = 0;
    if (colon == std::string_view::npos ||
        std::from_chars(in.data(), in.data() + colon, len).ptr != in.data() + colon ||
        in.size() - colon - 1 < len + 1 || in[colon + 1 + len] != ',')
      break;
    items.emplace_back(in.substr(colon + 1, len));
    in.remove_prefix(colon + len + 2);
  }
  if (items.empty()) return report;
  const auto number = [](const std::string& s, auto& v) {
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return !s.empty() && ec == std::errc() && end == s.data() + s.size();
  };
  if (items[0] == "error") {
    if (items.size() >= 2) report.error = items[1];
    report.complete = items.size() == 3 && items[2] == "end";
    return report;
  }
  std::size_t n = 0, changes = 0;
  const std::size_t k = change_columns().size();
  // "ok" n, n pairs, events, wall_s, summary, recorded, c, c records of k fields, "end"
  if (items[0] != "ok" || items.size() < 2 || !number(items[1], n) || n > items.size() ||
      items.size() < 2 + 2 * n + 6 || !number(items[6 + 2 * n], changes) ||
      changes > items.size() || items.size() != 2 + 2 * n + 6 + changes * k ||
      items.back() != "end" || (items[5 + 2 * n] != "0" && items[5 + 2 * n] != "1"))
    return report;
  for (std::size_t i = 0; i < n; ++i) {
    Metric m{items[2 + 2 * i], 0};
    if (!number(items[3 + 2 * i], m.value)) return report;
    report.result.metrics.push_back(std::move(m));
  }
  if (!number(items[2 + 2 * n], report.result.events) ||
      !number(items[3 + 2 * n], report.result.wall_s))
    return report;
  report.result.summary = items[4 + 2 * n];
  report.result.changes_recorded = items[5 + 2 * n] == "1";
  for (std::size_t c = 0; c < changes; ++c) {
    const auto first = items.begin() + static_cast<std::ptrdiff_t>(7 + 2 * n + c * k);
    try {
      report.result.changes.push_back(
          parse_change(std::vector<std::string>(first, first + static_cast<std::ptrdiff_t>(k))));
    } catch (const std::runtime_error&) {
      return report;
    }
  }
  report.complete = report.ok = true;
  return report;
}

std::string describe_exit(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    const char* text = strsignal(sig);
    return fmt::format("killed by signal {} (SIG{}: {})", sig, abbrev ? abbrev : "?",
                       text ? text : "?");
  }
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  return fmt::format("ended with wait status {}", status);
}

ChildRun::ChildRun(const Work& work, std::span<const int> close_in_child) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) detail::throw_errno("pipe");
  std::fflush(nullptr); // or the child would print the parent's buffered output again
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    errno = err;
    detail::throw_errno("fork");
  }
  if (pid == 0) {
    ::close(fds[0]);
    for (const int fd : close_in_child) ::close(fd);
    child_main(fds[1], work);
  }
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  pid_ = pid;
  fd_ = fds[0];
}

ChildRun::~ChildRun() {
  if (!reaped_) kill();
  if (fd_ >= 0) ::close(fd_);
}

void ChildRun::read_available() {
  if (fd_ < 0 || eof_) return;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n > 0) {
      report_.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) eof_ = true;
    if (n < 0 && errno == EINTR) continue;
    return;
  }
}

bool ChildRun::try_reap() {
  if (reaped_) return true;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r < 0 && errno == EINTR) r = 0;
  if (r == 0) return false;
  if (r < 0) status = W_EXITCODE(255, 0); // cannot happen with our own child; be safe
  read_available();                       // the child is gone: all it wrote is in the pipe
  status_ = status;
  reaped_ = true;
  return true;
}

void ChildRun::kill() {
  if (reaped_) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  read_available();
  status_ = status;
  reaped_ = true;
}

std::optional<RunResult> ChildRun::result() const {
  if (!reaped_ || !WIFEXITED(status_) || WEXITSTATUS(status_) != 0) return std::nullopt;
  ChildReport report = decode_report(report_);
  if (!report.ok) return std::nullopt;
  return std::move(report.result);
}

std::string ChildRun::failure() const {
  if (!reaped_) return "still running";
  const ChildReport report = decode_report(report_);
  const bool exited_ok = WIFEXITED(status_) && WEXITSTATUS(status_) == 0;
  std::string what = describe_exit(status_);
  if (!report.error.empty()) return what + ": " + report.error;
  if (exited_ok || !report.complete) what += " without sending a result";
  return what;
}

RunResult run_in_child(const ChildRun::Work& work, const std::function<void()>& between) {
  ChildRun child(work);
  while (!child.at_eof()) {
    pollfd p{child.fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    child.read_available();
    if (between) between(); // may throw: the child is killed by ChildRun's destructor
  }
  while (!child.try_reap()) {
    pollfd none{-1, 0, 0};
    ::poll(&none, 0, 5); // the pipe is closed: the child is exiting
    if (between) between();
  }
  if (auto r = child.result()) return std::move(*r);
  throw std::runtime_error("the run failed: " + child.failure());
}

} // namespace ivmc::experiment
