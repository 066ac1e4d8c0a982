// A small QMP client (QEMU Machine Protocol over a UNIX socket: one JSON object per line) for
// the launcher and the migration tests: the greeting and qmp_capabilities, commands with their
// responses, and the asynchronous events, read with timeouts.
//
// JSON is not parsed in full: QEMU's replies are flat enough that the first value of a key
// (json_string / json_number) is what a caller wants ("status", "total-time", "downtime").
#pragma once

#include "ivmc/core/platform.hpp"
#include "ivmc/posix/unique_fd.hpp"

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ivmc::kvm {

// The first value of `"key":` in `json` as a string (unescaped only for \" and \\) or number.
std::optional<std::string> json_string(std::string_view json, std::string_view key);
std::optional<double> json_number(std::string_view json, std::string_view key);

struct QmpEvent {
  std::string name;     // "MIGRATION", "STOP", "RESUME", ...
  std::string status;   // data.status, if any ("completed")
  double timestamp = 0; // QEMU's host wall-clock time of the event, in seconds
  Nanos received = 0;   // posix::MonotonicClock when this client read it
  std::string json;     // the whole line
};

class QmpClient {
public:
  // Connects (retrying while the socket does not exist yet or refuses), reads the greeting
  // and leaves negotiation mode with qmp_capabilities, all within `timeout`. Throws
  // IvshmemError naming the socket and the step.
  static QmpClient connect(const std::string& socket_path, Nanos timeout);

  // Sends {"execute": command, "arguments": arguments_json} (arguments omitted when empty) and
  // returns the response line; events read meanwhile are queued. Throws on an error response
  // (with QEMU's desc), a closed socket or the timeout.
  std::string execute(const std::string& command, const std::string& arguments_json, Nanos timeout);

  // The first queued or newly read event `match` accepts; the events before it are dropped
  // from the queue (they stay in history()). nullopt at the timeout or if QEMU closed.
  std::optional<QmpEvent> wait_event(const std::function<bool(const QmpEvent&)>& match,
                                     Nanos timeout);
  std::optional<QmpEvent> wait_event(const std::string& name, const std::string& status,
                                     Nanos timeout);
  const std::vector<QmpEvent>& history() const { return history_; }
  // Drops the queued events (they stay in history()): a later wait_event() sees only new ones,
  // e.g. not the MIGRATION completed of this QEMU's own incoming migration.
  void discard_events() { pending_.clear(); }

private:
  QmpClient(posix::UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  // One line, or nullopt at the deadline; throws if the socket closed.
  std::optional<std::string> read_line(Nanos deadline);
  void queue_event(const std::string& line);

  posix::UniqueFd fd_;
  std::string path_;
  std::string buffer_;
  std::deque<QmpEvent> pending_;
  std::vector<QmpEvent> history_;
};

} // namespace ivmc::kvm
