// Which fds are ring connections: see fd_table.hpp.
#include "fd_table.hpp"

#include "real.hpp"

#include <fcntl.h>
#include <pthread.h>

#include <algorithm>

namespace ivmc::preload {

FdTable& table() {
  static FdTable* t = [] {
    auto* created = new FdTable; // never destroyed: used by atexit handlers and late closes
    // Fork: the parent counts one more holder of each side before; the child's copies do not
    // own their sides after (ring_socket.hpp). The table's lock is held across the fork.
    ::pthread_atfork([] { table().before_fork(); }, [] { table().after_fork(false); },
                     [] { table().after_fork(true); });
    return created;
  }();
  return *t;
}

void FdTable::before_fork() {
  mutex_.lock(); // held across fork: the child's table is consistent
  std::vector<RingSocket*> seen;
  for (const auto& s : by_fd_) {
    if (!s || std::find(seen.begin(), seen.end(), s.get()) != seen.end()) continue;
    seen.push_back(s.get());
    s->before_fork();
  }
}

void FdTable::after_fork(bool child) {
  if (child) {
    for (const auto& s : by_fd_)
      if (s) s->in_child();
  }
  mutex_.unlock();
}

std::shared_ptr<RingSocket> FdTable::get(int fd) {
  if (fd < 0) return nullptr;
  std::lock_guard lock(mutex_);
  return static_cast<std::size_t>(fd) < by_fd_.size() ? by_fd_[static_cast<std::size_t>(fd)]
                                                      : nullptr;
}

void FdTable::put(int fd, std::shared_ptr<RingSocket> socket) {
  if (fd < 0) return;
  std::lock_guard lock(mutex_);
  const auto i = static_cast<std::size_t>(fd);
  if (i >= by_fd_.size()) {
    by_fd_.resize(std::max<std::size_t>(i + 1, 2 * by_fd_.size()));
    app_cloexec_.resize(by_fd_.size());
  }
  if (!by_fd_[i]) {
    count_.fetch_add(1, std::memory_order_relaxed); // a hint
    // The application's flag, kept; the kernel's is set (fd_table.hpp: close-on-exec).
    const int flags = real::fn().fcntl(fd, F_GETFD);
    app_cloexec_[i] = flags >= 0 && (flags & FD_CLOEXEC) != 0;
    if (flags >= 0 && (flags & FD_CLOEXEC) == 0) real::fn().fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
  by_fd_[i] = std::move(socket);
}

bool FdTable::app_cloexec(int fd) {
  std::lock_guard lock(mutex_);
  const auto i = static_cast<std::size_t>(fd);
  return fd >= 0 && i < by_fd_.size() && by_fd_[i] && app_cloexec_[i] != 0;
}

void FdTable::set_app_cloexec(int fd, bool on) {
  std::lock_guard lock(mutex_);
  const auto i = static_cast<std::size_t>(fd);
  if (fd >= 0 && i < by_fd_.size() && by_fd_[i]) app_cloexec_[i] = on;
}

std::vector<int> FdTable::meant_to_inherit() {
  std::lock_guard lock(mutex_);
  std::vector<int> out;
  for (std::size_t i = 0; i < by_fd_.size(); ++i)
    if (by_fd_[i] && app_cloexec_[i] == 0) out.push_back(static_cast<int>(i));
  return out;
}

std::shared_ptr<RingSocket> FdTable::close(int fd) {
  std::lock_guard lock(mutex_);
  const auto i = static_cast<std::size_t>(fd);
  if (fd < 0 || i >= by_fd_.size() || !by_fd_[i]) return nullptr;
  std::shared_ptr<RingSocket> s = std::move(by_fd_[i]);
  count_.fetch_sub(1, std::memory_order_relaxed); // a hint
  for (auto& [epfd, fds] : epoll_) {
    if (fds.erase(fd) != 0) real::fn().epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
  }
  for (std::size_t j = 0; j < by_fd_.size(); ++j) {
    if (by_fd_[j] == s) { // another fd of it stays: ring through that one
      s->set_fd(static_cast<int>(j));
      return nullptr;
    }
  }
  return s;
}

void FdTable::forget_fallback(const std::shared_ptr<RingSocket>& socket) {
  std::lock_guard lock(mutex_);
  for (std::size_t j = 0; j < by_fd_.size(); ++j) {
    if (by_fd_[j] != socket) continue;
    by_fd_[j].reset();
    count_.fetch_sub(1, std::memory_order_relaxed); // a hint
    const int fd = static_cast<int>(j);
    if (app_cloexec_[j] == 0) { // a kernel connection again: the application's flag
      const int flags = real::fn().fcntl(fd, F_GETFD);
      if (flags >= 0) real::fn().fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
    }
    for (auto& [epfd, fds] : epoll_) {
      auto it = fds.find(fd);
      if (it == fds.end()) continue;
      if (it->second.removed) { // the application had deleted it: so does the kernel now
        real::fn().epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
      } else {
        epoll_event ev{};
        ev.events = it->second.events;
        ev.data = it->second.data;
        real::fn().epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
      }
      fds.erase(it);
    }
  }
}

std::vector<std::shared_ptr<RingSocket>> FdTable::all() {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<RingSocket>> out;
  for (const auto& s : by_fd_)
    if (s && std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  return out;
}

void FdTable::epoll_set(int epfd, int fd, const EpollRegistration& r) {
  std::lock_guard lock(mutex_);
  epoll_[epfd][fd] = r;
}

void FdTable::epoll_erase(int epfd, int fd) {
  std::lock_guard lock(mutex_);
  auto it = epoll_.find(epfd);
  if (it != epoll_.end()) it->second.erase(fd);
}

bool FdTable::epoll_find(int epfd, int fd, EpollRegistration& out) {
  std::lock_guard lock(mutex_);
  auto it = epoll_.find(epfd);
  if (it == epoll_.end()) return false;
  auto f = it->second.find(fd);
  if (f == it->second.end()) return false;
  out = f->second;
  return true;
}

void FdTable::epoll_update(int epfd, int fd, const EpollRegistration& r) {
  std::lock_guard lock(mutex_);
  auto it = epoll_.find(epfd);
  if (it == epoll_.end()) return;
  auto f = it->second.find(fd);
  if (f != it->second.end()) f->second = r;
}

std::vector<std::pair<int, EpollRegistration>> FdTable::epoll_list(int epfd) {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<int, EpollRegistration>> out;
  auto it = epoll_.find(epfd);
  if (it == epoll_.end()) return out;
  out.assign(it->second.begin(), it->second.end());
  return out;
}

void FdTable::epoll_close(int epfd) {
  std::lock_guard lock(mutex_);
  epoll_.erase(epfd);
}

std::shared_ptr<RingSocket> ring_of(int fd, bool block, bool& pending) {
  pending = false;
  FdTable& t = table();
  if (!t.any()) return nullptr;
  std::shared_ptr<RingSocket> s = t.get(fd);
  if (!s) return nullptr;
  RingSocket::State st = s->state();
  if (st == RingSocket::State::pending) st = s->settle(block);
  if (st == RingSocket::State::tcp) {
    t.forget_fallback(s);
    return nullptr;
  }
  pending = st == RingSocket::State::pending;
  return s;
}

} // namespace ivmc::preload
