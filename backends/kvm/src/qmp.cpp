// A small QMP client: see include/ivmc/kvm/qmp.hpp.
#include "ivmc/kvm/qmp.hpp"

#include "ivmc/kvm/error.hpp"
#include "ivmc/posix/clock.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

namespace ivmc::kvm {
namespace {

// Where the value of the first `"key"` followed by ':' starts, or npos.
std::size_t value_at(std::string_view json, std::string_view key) {
  const std::string quoted = "\"" + std::string(key) + "\"";
  for (std::size_t at = json.find(quoted); at != std::string_view::npos;
       at = json.find(quoted, at + 1)) {
    std::size_t i = at + quoted.size();
    while (i < json.size() && (json[i] == ' ' || json[i] == '\t')) ++i;
    if (i < json.size() && json[i] == ':') {
      ++i;
      while (i < json.size() && (json[i] == ' ' || json[i] == '\t')) ++i;
      return i;
    }
  }
  return std::string_view::npos;
}

} // namespace

std::optional<std::string> json_string(std::string_view json, std::string_view key) {
  std::size_t i = value_at(json, key);
  if (i == std::string_view::npos || i >= json.size() || json[i] != '"') return std::nullopt;
  std::string out;
  for (++i; i < json.size(); ++i) {
    if (json[i] == '"') return out;
    if (json[i] == '\\' && i + 1 < json.size()) ++i;
    out += json[i];
  }
  return std::nullopt; // unterminated
}

std::optional<double> json_number(std::string_view json, std::string_view key) {
  const std::size_t i = value_at(json, key);
  if (i == std::string_view::npos) return std::nullopt;
  std::size_t end = i;
  while (end < json.size() && std::strchr("+-.0123456789eE", json[end]) != nullptr) ++end;
  if (end == i) return std::nullopt;
  try {
    return std::stod(std::string(json.substr(i, end - i)));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

QmpClient QmpClient::connect(const std::string& path, Nanos timeout) {
  const Nanos deadline = posix::MonotonicClock::read() + timeout;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    throw IvshmemError(fmt::format("QMP: socket path {} is too long", path));
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  for (;;) {
    posix::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw IvshmemError("QMP: socket() failed");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      QmpClient client(std::move(fd), path);
      const auto greeting = client.read_line(deadline);
      if (!greeting || greeting->find("\"QMP\"") == std::string::npos)
        throw IvshmemError(fmt::format("QMP {}: no greeting in time", path));
      client.execute("qmp_capabilities", "", deadline - posix::MonotonicClock::read());
      return client;
    }
    const int err = errno;
    if ((err != ENOENT && err != ECONNREFUSED) || posix::MonotonicClock::read() >= deadline)
      throw IvshmemError(fmt::format("QMP: connect to {} failed: {}", path, std::strerror(err)));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::optional<std::string> QmpClient::read_line(Nanos deadline) {
  for (;;) {
    if (const std::size_t nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      while (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      return line;
    }
    const Nanos left = deadline - posix::MonotonicClock::read();
    if (left <= 0) return std::nullopt;
    pollfd p{fd_.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<Nanos>(left / 1'000'000 + 1, 1000)));
    if (ready < 0 && errno != EINTR) throw IvshmemError(fmt::format("QMP {}: poll failed", path_));
    if (ready <= 0) continue;
    char chunk[4096];
    const ssize_t n = ::read(fd_.get(), chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) throw IvshmemError(fmt::format("QMP {}: QEMU closed the connection", path_));
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

void QmpClient::queue_event(const std::string& line) {
  QmpEvent ev;
  ev.name = json_string(line, "event").value_or("");
  ev.status = json_string(line, "status").value_or("");
  ev.timestamp = json_number(line, "seconds").value_or(0) +
                 json_number(line, "microseconds").value_or(0) / 1e6;
  ev.received = posix::MonotonicClock::read();
  ev.json = line;
  history_.push_back(ev);
  pending_.push_back(std::move(ev));
}

std::string QmpClient::execute(const std::string& command, const std::string& arguments,
                               Nanos timeout) {
  const Nanos deadline = posix::MonotonicClock::read() + timeout;
  std::string request = "{\"execute\": \"" + command + "\"";
  if (!arguments.empty()) request += ", \"arguments\": " + arguments;
  request += "}\n";
  for (std::size_t done = 0; done < request.size();) {
    const ssize_t n = ::send(fd_.get(), request.data() + done, request.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw IvshmemError(fmt::format("QMP {}: sending {} failed", path_, command));
    done += static_cast<std::size_t>(n);
  }
  for (;;) {
    const auto line = read_line(deadline);
    if (!line) throw IvshmemError(fmt::format("QMP {}: no answer to {} in time", path_, command));
    if (line->find("\"event\"") != std::string::npos &&
        line->find("\"return\"") == std::string::npos) {
      queue_event(*line);
      continue;
    }
    if (line->find("\"error\"") != std::string::npos) {
      throw IvshmemError(fmt::format("QMP {}: {} failed: {}", path_, command,
                                     json_string(*line, "desc").value_or(*line)));
    }
    if (line->find("\"return\"") != std::string::npos) return *line;
    // Anything else (a late greeting?) is ignored.
  }
}

std::optional<QmpEvent> QmpClient::wait_event(const std::function<bool(const QmpEvent&)>& match,
                                              Nanos timeout) {
  const Nanos deadline = posix::MonotonicClock::read() + timeout;
  for (;;) {
    while (!pending_.empty()) {
      QmpEvent ev = std::move(pending_.front());
      pending_.pop_front();
      if (match(ev)) return ev;
    }
    std::optional<std::string> line;
    try {
      line = read_line(deadline);
    } catch (const IvshmemError&) {
      return std::nullopt; // QEMU ended
    }
    if (!line) return std::nullopt;
    if (line->find("\"event\"") != std::string::npos) queue_event(*line);
  }
}

std::optional<QmpEvent> QmpClient::wait_event(const std::string& name, const std::string& status,
                                              Nanos timeout) {
  return wait_event(
      [&](const QmpEvent& ev) {
        return ev.name == name && (status.empty() || ev.status == status);
      },
      timeout);
}

} // namespace ivmc::kvm
