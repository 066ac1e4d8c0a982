// The control channel's messages and socket (control.hpp).
#include "ivmc/host/control.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <vector>

namespace ivmc::host {

namespace {
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c <= ' ' || c == '=' || c > '~') return false;
  }
  return true;
}
} // namespace

Message& Message::set(const std::string& key, std::string value) {
  if (!is_token(key) || (!value.empty() && !is_token(value))) {
    throw ControlError(fmt::format("control: {} {}={:?}: not a plain token", verb_, key, value));
  }
  fields_[key] = std::move(value);
  return *this;
}
Message& Message::set(const std::string& key, std::uint64_t value) {
  return set(key, std::to_string(value));
}
Message& Message::set(const std::string& key, std::int64_t value) {
  return set(key, std::to_string(value));
}
Message& Message::set(const std::string& key, double value) {
  return set(key, fmt::format("{:.17g}", value));
}

const std::string& Message::text(const std::string& key) const {
  const auto it = fields_.find(key);
  if (it == fields_.end()) throw ControlError(fmt::format("control: {}: no {}=", verb_, key));
  return it->second;
}

namespace {
template <class T>
T parse_integer(const Message& m, const std::string& key, const std::string& v) {
  T out{};
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size()) {
    throw ControlError(fmt::format("control: {} {}={}: not an integer in range", m.verb(), key, v));
  }
  return out;
}
} // namespace

std::uint64_t Message::u64(const std::string& key) const {
  return parse_integer<std::uint64_t>(*this, key, text(key));
}
std::int64_t Message::i64(const std::string& key) const {
  return parse_integer<std::int64_t>(*this, key, text(key));
}
double Message::real(const std::string& key) const {
  const std::string& v = text(key);
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v.c_str(), &end);
  if (end != v.c_str() + v.size() || errno != 0 || !std::isfinite(d)) {
    throw ControlError(fmt::format("control: {} {}={}: not a finite number", verb_, key, v));
  }
  return d;
}

std::string Message::encode() const {
  std::string out = verb_;
  for (const auto& [k, v] : fields_) out += fmt::format(" {}={}", k, v);
  return out;
}

Message Message::parse(std::string_view packet) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < packet.size()) {
    while (i < packet.size() && packet[i] == ' ') ++i;
    const std::size_t start = i;
    while (i < packet.size() && packet[i] != ' ') ++i;
    if (i > start) words.push_back(packet.substr(start, i - start));
  }
  if (words.empty() || !is_token(words[0])) throw ControlError("control: a packet with no verb");
  Message m{std::string(words[0])};
  for (std::size_t w = 1; w < words.size(); ++w) {
    const std::size_t eq = words[w].find('=');
    if (eq == std::string_view::npos || eq == 0) {
      throw ControlError(fmt::format("control: {}: field {:?} is not key=value", m.verb_,
                                     std::string(words[w].substr(0, 64))));
    }
    const std::string key(words[w].substr(0, eq));
    const std::string value(words[w].substr(eq + 1));
    if (m.fields_.count(key))
      throw ControlError(fmt::format("control: {}: {} twice", m.verb_, key));
    m.set(key, value);
  }
  return m;
}

std::pair<ControlSocket, ControlSocket> ControlSocket::pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    throw ControlError(fmt::format("control: socketpair: {}", std::strerror(errno)));
  }
  return {ControlSocket(fds[0]), ControlSocket(fds[1])};
}

ControlSocket& ControlSocket::operator=(ControlSocket&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

ControlSocket::~ControlSocket() {
  if (fd_ >= 0) ::close(fd_);
}

void ControlSocket::send(const Message& m) {
  const std::string packet = m.encode();
  if (packet.size() > kMaxPacket) throw ControlError("control: message too large: " + m.verb());
  for (;;) {
    const ssize_t n = ::send(fd_, packet.data(), packet.size(), MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(packet.size())) return;
    if (n < 0 && errno == EINTR) continue;
    throw ControlError(fmt::format("control: sending {}: {}", m.verb(),
                                   n < 0 ? std::strerror(errno) : "short write"));
  }
}

std::optional<Message> ControlSocket::recv(Nanos timeout) {
  pollfd p{fd_, POLLIN, 0};
  const int ms = timeout == kForever ? -1 : static_cast<int>((timeout + 999'999) / 1'000'000);
  for (;;) {
    const int r = ::poll(&p, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw ControlError(fmt::format("control: poll: {}", std::strerror(errno)));
    if (r == 0) return std::nullopt;
    break;
  }
  std::string buffer(kMaxPacket + 1, '\0');
  ssize_t n;
  do {
    n = ::recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::nullopt;
  if (n < 0) throw ControlError(fmt::format("control: recv: {}", std::strerror(errno)));
  if (n == 0) throw ControlError("control: the other end closed");
  if (static_cast<std::size_t>(n) > kMaxPacket) throw ControlError("control: packet too large");
  buffer.resize(static_cast<std::size_t>(n));
  return Message::parse(buffer);
}

} // namespace ivmc::host
