// The control channel between the host backend's orchestrator and a VM process: one
// SOCK_SEQPACKET socket pair, one message per packet, each a verb and `key=value` fields:
//
//   move host=1
//   report pipe=0 end=send messages=1200 ...
//
// Keys and values are plain tokens (no spaces or '='). Each side parses what it receives once,
// here, into a Message whose typed getters throw ControlError naming the verb and key: the
// orchestrator never trusts a VM process's numbers blindly (a crashed or confused process
// must fail the run with its name, not corrupt the results).
#pragma once

#include "ivmc/core/channel.hpp" // kForever
#include "ivmc/core/platform.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace ivmc::host {

class ControlError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

class Message {
public:
  Message() = default;
  explicit Message(std::string verb) : verb_(std::move(verb)) {}
  const std::string& verb() const { return verb_; }

  Message& set(const std::string& key, std::string value);
  Message& set(const std::string& key, std::uint64_t value);
  Message& set(const std::string& key, std::int64_t value);
  Message& set(const std::string& key, double value);
  Message& set(const std::string& key, int value) { return set(key, std::int64_t{value}); }
  Message& set(const std::string& key, unsigned value) { return set(key, std::uint64_t{value}); }

  bool has(const std::string& key) const { return fields_.count(key) != 0; }
  const std::string& text(const std::string& key) const;
  std::uint64_t u64(const std::string& key) const;
  std::int64_t i64(const std::string& key) const;
  double real(const std::string& key) const; // finite
  const std::map<std::string, std::string>& fields() const { return fields_; }

  std::string encode() const;
  // Throws ControlError on an empty verb, a field without '=', or a repeated key.
  static Message parse(std::string_view packet);

private:
  std::string verb_;
  std::map<std::string, std::string> fields_;
};

// One end of the control socket pair. Packets over kMaxPacket are refused.
class ControlSocket {
public:
  static constexpr std::size_t kMaxPacket = 64 * 1024;
  // A connected SOCK_SEQPACKET pair: the orchestrator's end and the child's end.
  static std::pair<ControlSocket, ControlSocket> pair();
  explicit ControlSocket(int fd) : fd_(fd) {}
  ControlSocket(ControlSocket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  ControlSocket& operator=(ControlSocket&& o) noexcept;
  ControlSocket(const ControlSocket&) = delete;
  ControlSocket& operator=(const ControlSocket&) = delete;
  ~ControlSocket();

  int fd() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  // Throws ControlError when the peer is gone.
  void send(const Message& m);
  // The next message within `timeout` (kForever: wait); nothing on timeout. Throws
  // ControlError when the peer closed or sent something unparsable.
  std::optional<Message> recv(Nanos timeout);

private:
  int fd_ = -1;
};

} // namespace ivmc::host
