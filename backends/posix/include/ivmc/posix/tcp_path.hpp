// The remote path on real hosts and guests: link frames over a TCP connection.
// Each frame is a little-endian u32 length followed by that many bytes. The peer is untrusted:
// a length above max_frame() is a protocol violation, never an allocation.
#pragma once

#include "ivmc/core/link.hpp"
#include "ivmc/posix/unique_fd.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ivmc::posix {

class TcpPath final : public FramePath {
public:
  // Takes a connected stream socket (TCP_NODELAY is set here).
  explicit TcpPath(UniqueFd socket, std::size_t max_frame = 16u << 20);
  // Connects to host:port (loopback in tests), retrying until `timeout`. Throws on failure.
  static TcpPath connect(const std::string& host, std::uint16_t port, Nanos timeout);
  // The same, without throwing: nullopt when no connection could be made in time.
  static std::optional<TcpPath> try_connect(const std::string& host, std::uint16_t port,
                                            Nanos timeout);

  Errc send(std::span<const std::byte> head, std::span<const std::byte> body,
            Nanos timeout) override;
  Errc recv(std::span<std::byte> head, std::span<std::byte> body, std::size_t& length,
            Nanos timeout) override;
  std::size_t max_frame() const override { return max_frame_; }
  bool broken() const override { return !error_.empty(); }
  const std::string& error() const { return error_; }
  // Bytes received and not handed out yet (0: the next recv() has to wait for the socket).
  std::size_t buffered() const { return staged_.size() - staged_start_; }
  // Bytes the receive buffer holds, handed out or not: at most one read (64 KiB) beyond the
  // largest frame in progress, however many bytes have come through.
  std::size_t held() const { return staged_.size(); }

private:
  // Reads what the socket has (waiting up to `timeout` for the first byte) into staged_.
  Errc fill(Nanos timeout);
  Errc fail(Errc code, std::string what);

  UniqueFd socket_;
  std::size_t max_frame_;
  std::vector<std::byte> staged_; // bytes received but not yet handed out
  std::size_t staged_start_ = 0;
  bool eof_ = false;
  std::string error_;
};

// A listening TCP socket: on 127.0.0.1 with a kernel-chosen port, or on a given IPv4 address
// and port (a guest's, for the guests' remote path).
class TcpListener {
public:
  TcpListener();
  TcpListener(const std::string& address, std::uint16_t port);
  std::uint16_t port() const { return port_; }
  // Waits up to `timeout` for one connection. Throws on timeout or failure.
  TcpPath accept(Nanos timeout);
  // The same, without throwing on a timeout (0: only a connection already waiting).
  std::optional<TcpPath> try_accept(Nanos timeout);

private:
  UniqueFd socket_;
  std::uint16_t port_ = 0;
};

} // namespace ivmc::posix
