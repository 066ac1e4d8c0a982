// Which of this process's fds are ring connections, and which epoll sets they are in.
// Several fds (dup) may refer to one ring connection, as to one kernel socket.
#pragma once

#include "ring_socket.hpp"

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace ivmc::preload {

// An application's registration of a ring connection's fd in an epoll set. The kernel holds
// the fd with kEpollTag | fd as its data; the application's data is returned from here.
struct EpollRegistration {
  std::uint32_t events = 0;        // what the application asked for
  epoll_data_t data{};             // what it gets back
  std::uint32_t kernel_events = 0; // what the kernel registration asks for now
  bool disabled = false;           // EPOLLONESHOT fired
  // The application deleted it (EPOLL_CTL_DEL), but the kernel registration of the ring's
  // socket stays until close: an event loop that deletes and adds again for every request
  // (redis-benchmark's ae does) then costs no epoll_ctl system call (interpose_wait.cpp).
  bool removed = false;
};
inline constexpr std::uint64_t kEpollTag = 0x1f4c'c0de'0000'0000ull;
inline constexpr std::uint64_t kEpollTagMask = 0xffff'ffff'0000'0000ull;

class FdTable {
public:
  bool any() const {
    return count_.load(std::memory_order_relaxed) != 0; // relaxed: a hint for the fast path
  }
  std::shared_ptr<RingSocket> get(int fd);
  void put(int fd, std::shared_ptr<RingSocket> socket);
  // Forgets `fd`. Returns its connection if `fd` was its last fd in this process.
  std::shared_ptr<RingSocket> close(int fd);
  // The connection fell back to kernel TCP: forget every fd of it, and give its epoll
  // registrations back to the kernel with the application's own events and data.
  void forget_fallback(const std::shared_ptr<RingSocket>& socket);
  std::vector<std::shared_ptr<RingSocket>> all();

  // Close-on-exec. A ring connection's fd is close-on-exec in the kernel whatever the
  // application asks: a program run by exec would otherwise read the doorbell's bytes on it as
  // data (docs/preload.md, "Limits"). What the application asked is kept here: fcntl(F_GETFD)
  // reports it, and exec warns about the fds it meant the new program to inherit.
  bool app_cloexec(int fd);
  void set_app_cloexec(int fd, bool on);
  std::vector<int> meant_to_inherit(); // ring fds whose application flag is not close-on-exec

  // epoll bookkeeping for ring connections.
  void epoll_set(int epfd, int fd, const EpollRegistration& r);
  void epoll_erase(int epfd, int fd);
  bool epoll_find(int epfd, int fd, EpollRegistration& out);
  void epoll_update(int epfd, int fd, const EpollRegistration& r);
  std::vector<std::pair<int, EpollRegistration>> epoll_list(int epfd);
  void epoll_close(int epfd); // the epoll fd itself was closed

  // pthread_atfork's handlers (ring_socket.hpp: fork).
  void before_fork();
  void after_fork(bool child);

private:
  std::mutex mutex_;
  std::vector<std::shared_ptr<RingSocket>> by_fd_;
  std::vector<std::uint8_t> app_cloexec_; // by fd, for the fds in by_fd_
  std::atomic<int> count_{0};             // fds in by_fd_; relaxed: a hint for the fast path
  std::map<int, std::map<int, EpollRegistration>> epoll_; // epfd -> fd -> registration
};

FdTable& table();

// The fd's ring connection, once settled: nullptr if it is not one (any more). A pending
// client is settled first (waiting for the listener when `block`); `pending` says it still is.
std::shared_ptr<RingSocket> ring_of(int fd, bool block, bool& pending);

} // namespace ivmc::preload
