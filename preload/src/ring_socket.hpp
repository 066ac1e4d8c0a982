// One TCP connection carried by a ring: the application's fd stays the real, connected kernel
// socket (so fork, dup, exec, getsockname and getsockopt work natively) and the connection's
// bytes go through the core's channel in a region the host service handed to both ends. The
// kernel connection carries the doorbell (socket_doorbell.hpp).
//
// Set-up (docs/preload.md): the client asks the service for a region before it connects
// (service_connect, by its own and the listener's port) and creates the channel there; the
// listener's library, in accept(), asks for the pending connection of those ports
// (service_accept), writes kMagic on the kernel connection and attaches. The client is
// *pending* until it reads kMagic: it sends nothing on the ring before, and if the listener
// never takes the ring (not an ivmc process after all, or too late) the client cancels at the
// service and stays on kernel TCP with one warning line. If nobody listened on the port when
// the client asked, the region is tentative and the client confirms it once its kernel connect
// succeeded (a listener may have registered in between; interpose_sockets.cpp).
//
// Fork: both processes hold the channel's side after fork, and a side is one producer and one
// consumer. The process that had it keeps it; the other may take it over only once the first
// closed it without using it after the fork (the usual fork-after-accept server). A shared
// page after the channel area counts the processes holding each side, so that only the last
// close detaches the side.
#pragma once

#include "service.hpp"
#include "socket_doorbell.hpp"

#include "ivmc/core/channel.hpp"

#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace ivmc::preload {

inline constexpr char kMagic[8] = {'I', 'V', 'M', 'C', 'R', 'I', 'N', 'G'};

class MonoClock final : public ivmc::Clock {
public:
  Nanos now() override;
};

// Settings from the environment (IVMC_RING_BYTES, IVMC_SPIN_US, IVMC_ATTACH_TIMEOUT_MS).
struct Settings {
  std::uint32_t ring_bytes = 1u << 20;
  Nanos spin = 50'000;
  Nanos attach_timeout = 3'000'000'000;
};
const Settings& settings();
// Region bytes for a connection: the channel area and the shared page after it.
std::size_t region_bytes();

class RingSocket {
public:
  enum class State { pending, ring, tcp };

  // The client's side, created before connect(); nullptr (and `why`) if the channel cannot be
  // made in the region.
  static std::shared_ptr<RingSocket> client(int fd, std::unique_ptr<Region> region,
                                            std::uint16_t client_port, std::uint16_t server_port,
                                            std::string& why);
  // The listener's side, after accept(): writes kMagic, attaches.
  static std::shared_ptr<RingSocket> server(int fd, std::unique_ptr<Region> region,
                                            std::string& why);
  ~RingSocket();

  State state() const;
  // A pending client reads kMagic if it arrived (waiting for it when `block`). Returns the
  // state after: ring, tcp (fell back; the caller forgets this object), or still pending.
  State settle(bool block);
  // connect() itself failed: give the pending connection back to the service.
  void abandon();
  // The service decided on kernel TCP for a tentative connection (it forgot it already).
  void forget();
  std::uint16_t client_port() const { return client_port_; }
  std::uint16_t server_port() const { return server_port_; }

  // recv/read family; flags: MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL. -1 with errno as TCP would.
  ssize_t read(const iovec* iov, int count, int flags);
  ssize_t write(const iovec* iov, int count, int flags);
  int shutdown(int how);
  int bytes_readable(); // FIONREAD: at least the next record's unread bytes

  // For poll/epoll/select: which of POLLIN/POLLOUT (of `events`) the ring allows now, with
  // POLLHUP/POLLRDHUP/POLLERR when the connection ended.
  short readiness(short events);
  // Before sleeping in the kernel: ask the peer to ring for the wanted events. Returns what
  // became ready meanwhile (then no ring will come).
  short arm(short events);
  // The kernel said the socket is readable: take the rings out of it.
  void drain() { bell_.drain(); }

  void set_nonblocking(bool on) { nonblocking_ = on; }
  bool nonblocking() const { return nonblocking_; }
  int fd() const { return bell_.fd(); }
  void set_fd(int fd) { bell_.set_fd(fd); }

  // Fork: before it (in the parent) one more process holds this side; after it (in the child)
  // this copy does not own the side yet.
  void before_fork();
  void in_child();
  // The last fd of this process referring to it was closed.
  void close_last();
  // This process is about to exec, which closes the fd (fd_table.hpp: close-on-exec). A forked
  // copy that does not own the side stops counting as a holder, so that the owner's close still
  // detaches the side (the peer reads an end of stream, not a death).
  void before_exec();

private:
  struct SidePage { // in shared memory, one per side: hostile input, only compared
    std::uint32_t holders;
    std::int32_t owner; // pid that uses the side, 0 when released
    std::uint64_t released_ops;
  };
  RingSocket(int fd, std::unique_ptr<Region> region, int side);
  SidePage& page(int side);
  bool own(); // this process may use the side (taking it over after fork if it can)
  void fall_back(const std::string& why, bool warn);
  ssize_t fail_write(int flags, int error);
  // The peer's kernel connection ended: did its side end in order (an end of stream), or did
  // it die (a reset)?
  bool ended_in_order();

  // Back to kernel TCP (fell back, abandoned or forgotten): the doorbell rings no more into
  // the application's stream and its TCP_NODELAY is what it was. Caller holds state_mutex_.
  void to_tcp();

  MonoClock clock_;
  SocketDoorbell bell_;
  bool nodelay_before_ = false; // the application's TCP_NODELAY before the ring set it
  std::unique_ptr<Region> region_;
  std::unique_ptr<Channel> channel_;
  int side_;
  std::uint16_t client_port_ = 0, server_port_ = 0;
  mutable std::mutex state_mutex_;
  State state_ = State::ring;
  Nanos pending_since_ = 0, pending_deadline_ = 0;
  bool nonblocking_ = false;
  // This process may use the side. Release/acquire: a thread that sees it true sees the
  // take-over's reads of the shared page (own()) done before it was set.
  std::atomic<bool> owner_{true};
  std::uint64_t ops_ = 0; // reads and writes by this process (compared after fork)

  std::mutex rx_mutex_, tx_mutex_; // a channel side has one receiving and one sending thread
  bool viewing_ = false;           // a record is being read in parts
  ReadableRecord view_{};
  std::size_t view_offset_ = 0;
  bool write_shut_ = false;
  bool warned_ = false;
  bool exec_released_ = false; // before_exec took this process off the holders
};

} // namespace ivmc::preload
