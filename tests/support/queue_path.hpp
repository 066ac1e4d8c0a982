// An in-process remote path for tests: frames in a queue, one per direction, blocking reads.
#pragma once

#include "ivmc/core/link.hpp"

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <vector>

namespace ivmc::test {

class QueuePath final : public FramePath {
public:
  explicit QueuePath(std::size_t max_frame = 1 << 20) : max_(max_frame) {}
  // Under a virtual clock a real sleep is pointless: an empty queue answers at once.
  void set_virtual_time(bool on) { virtual_time_ = on; }
  Errc send(std::span<const std::byte> head, std::span<const std::byte> body, Nanos) override {
    std::vector<std::byte> f(head.begin(), head.end());
    f.insert(f.end(), body.begin(), body.end());
    {
      std::lock_guard lock(m_);
      if (broken_) return Errc::closed;
      q_.push_back(std::move(f));
    }
    cv_.notify_all();
    return Errc::ok;
  }
  Errc recv(std::span<std::byte> head, std::span<std::byte> body, std::size_t& length,
            Nanos timeout) override {
    std::unique_lock lock(m_);
    if (virtual_time_ && q_.empty() && !broken_) return Errc::timed_out; // no futex at all
    if (!cv_.wait_for(lock, std::chrono::nanoseconds(timeout),
                      [&] { return !q_.empty() || broken_; }))
      return Errc::timed_out;
    if (q_.empty()) return Errc::peer_closed;
    auto& f = q_.front();
    length = f.size();
    if (f.size() > head.size() + body.size()) return Errc::buffer_too_small;
    const std::size_t h = std::min(f.size(), head.size());
    if (h) std::memcpy(head.data(), f.data(), h);
    if (f.size() > h) std::memcpy(body.data(), f.data() + h, f.size() - h);
    q_.pop_front();
    return Errc::ok;
  }
  std::size_t max_frame() const override { return max_; }
  std::size_t queued() {
    std::lock_guard lock(m_);
    return q_.size();
  }

private:
  std::size_t max_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::vector<std::byte>> q_;
  bool broken_ = false;
  bool virtual_time_ = false;
};

// Wraps a path so a test can make sends on it fail from a chosen moment (a stale channel after
// the peer migrated away).
class BreakablePath final : public FramePath {
public:
  explicit BreakablePath(FramePath& inner) : inner_(inner) {}
  void break_now() { broken_ = true; }
  void repair() { broken_ = false; }
  Errc send(std::span<const std::byte> head, std::span<const std::byte> body,
            Nanos timeout) override {
    return broken_ ? Errc::peer_dead : inner_.send(head, body, timeout);
  }
  Errc recv(std::span<std::byte> head, std::span<std::byte> body, std::size_t& length,
            Nanos timeout) override {
    return inner_.recv(head, body, length, timeout);
  }
  std::size_t max_frame() const override { return inner_.max_frame(); }
  bool broken() const override { return broken_ || inner_.broken(); }
  Errc read_back_unconsumed(const std::function<bool(std::span<const std::byte>)>& visit) override {
    return inner_.read_back_unconsumed(visit);
  }

private:
  FramePath& inner_;
  bool broken_ = false;
  bool virtual_time_ = false;
};

} // namespace ivmc::test
