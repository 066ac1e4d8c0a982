// One shared resource on the simulated hypervisor path (a Dom0 CPU, a vhost worker, a NIC): the
// time it is busy, and when a frame that reaches it has been served.
//
// Frames reserve a stage when they are sent, so reservations come in send order, and a frame
// that leaves later may reach a stage earlier than one reserved before it (a frame going out of
// host B at t is reserved after a frame from host A that reaches B's Dom0 at t + 40 us). A
// single "free at" time served such a frame only after every reservation made so far, including
// those for later times: a resource that is idle now did not serve a frame that reached it now.
// Along a chain of hosts that wait compounded (each host's outgoing frames waited for the
// incoming frames of the host before it), and latency grew without bound.
//
// Here a stage keeps the intervals it is reserved for, and serves a frame that reaches it at
// `arrive` with `work` ns of service in the idle time from `arrive` on: in the first gaps
// between earlier reservations, split around them if it does not fit in one, until it has had
// `work` ns. So the stage is never idle while a frame that reached it waits (it is
// work-conserving, like a queue served in arrival order), its busy periods are exactly those of
// such a queue fed with the same frames, and a frame is delayed only by work that reached the
// stage before it ended and was reserved before it, never by a reservation for a later time.
// Within one busy period earlier reservations go first (for one flow that is arrival order, so
// a flow's frames stay in order); a frame finishes within the busy period it would finish in
// under arrival order.
#pragma once

#include "ivmc/core/platform.hpp"

#include <algorithm>
#include <cstddef>
#include <vector>

namespace ivmc::sim {

class Stage {
public:
  // Serves `work` ns of work that reaches the stage at `arrive` and returns when it is done.
  // `now` is the current simulated time: no later call has `arrive` before it, so reservations
  // that ended by then are forgotten (memory is the reservations still ahead, not their history).
  Nanos serve(Nanos now, Nanos arrive, Nanos work) {
    forget_before(now);
    // The first reservation still busy at `arrive` (the intervals are sorted and disjoint, so
    // their ends are sorted too).
    auto it = std::upper_bound(busy_.begin() + static_cast<std::ptrdiff_t>(head_), busy_.end(),
                               arrive, [](Nanos t, const Interval& i) { return t < i.end; });
    Nanos t = arrive, left = std::max<Nanos>(work, 0), done = arrive;
    for (;; ++it) {
      if (it == busy_.end()) {
        done = t + left;
        break;
      }
      if (it->start > t) { // an idle gap [t, it->start)
        const Nanos gap = it->start - t;
        if (left <= gap) {
          done = t + left;
          break;
        }
        left -= gap;
      }
      t = it->end;
    }
    if (done > arrive) reserve(arrive, done);
    busy_ns_ += std::max<Nanos>(work, 0);
    return done;
  }

  // When serve(now, arrive, work) would finish, without reserving anything.
  Nanos finish(Nanos arrive, Nanos work) const {
    auto it = std::upper_bound(busy_.begin() + static_cast<std::ptrdiff_t>(head_), busy_.end(),
                               arrive, [](Nanos t, const Interval& i) { return t < i.end; });
    Nanos t = arrive, left = std::max<Nanos>(work, 0);
    for (; it != busy_.end(); ++it) {
      if (it->start > t) {
        if (left <= it->start - t) return t + left;
        left -= it->start - t;
      }
      t = it->end;
    }
    return t + left;
  }

  Nanos busy_ns() const { return busy_ns_; }                        // all work served so far
  std::size_t reservations() const { return busy_.size() - head_; } // intervals still ahead

private:
  struct Interval {
    Nanos start, end; // [start, end)
  };

  // After a serve, [from, to) is busy throughout: it merges with every interval it overlaps or
  // touches into one.
  void reserve(Nanos from, Nanos to) {
    const auto first =
        std::lower_bound(busy_.begin() + static_cast<std::ptrdiff_t>(head_), busy_.end(), from,
                         [](const Interval& i, Nanos t) { return i.end < t; });
    auto last = first;
    while (last != busy_.end() && last->start <= to) ++last;
    if (first == last) {
      busy_.insert(first, Interval{from, to});
      return;
    }
    first->start = std::min(first->start, from);
    first->end = std::max((last - 1)->end, to);
    busy_.erase(first + 1, last);
  }

  void forget_before(Nanos now) {
    while (head_ < busy_.size() && busy_[head_].end <= now) ++head_;
    if (head_ > 64 && head_ * 2 > busy_.size()) { // compact now and then, not per call
      busy_.erase(busy_.begin(), busy_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }

  std::vector<Interval> busy_; // sorted, disjoint, not touching; [head_, end) may still matter
  std::size_t head_ = 0;
  Nanos busy_ns_ = 0;
};

} // namespace ivmc::sim
