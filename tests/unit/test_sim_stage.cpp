// A hypervisor-path stage (sim/stage.hpp): a frame that reaches an idle stage is served at once,
// whatever was reserved for later times; the stage is work-conserving, so its busy periods and
// its last completion are those of a queue served in arrival order.
#include "ivmc/sim/stage.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <vector>

using ivmc::Nanos;
using ivmc::sim::Stage;

TEST_CASE("a stage serves a frame now when it is idle now, not after later reservations", "[sim]") {
  Stage s;
  CHECK(s.serve(0, 1'000, 10) == 1'010); // reserved for later (a frame still on its way)
  CHECK(s.serve(0, 0, 10) == 10);        // a single free-at time said 1,020
  CHECK(s.serve(0, 990, 10) == 1'000);   // fits exactly in the gap before the reservation
  // Does not fit in [995, 1,000): 5 ns there, the other 5 after the reservation.
  Stage t;
  CHECK(t.serve(0, 1'000, 10) == 1'010);
  CHECK(t.serve(0, 995, 10) == 1'015);
  CHECK(t.busy_ns() == 20);
}

TEST_CASE("a stage queues frames that reach it while it is busy, in order", "[sim]") {
  Stage s;
  CHECK(s.serve(0, 0, 10) == 10);
  CHECK(s.serve(0, 0, 10) == 20);
  CHECK(s.serve(0, 5, 10) == 30);
  CHECK(s.serve(0, 100, 0) == 100); // no work, no wait
  CHECK(s.serve(0, 40, 10) == 50);  // idle again from 30
}

// Frames reserved in a random order (not their arrival order): the last completion and each
// busy period are those of a server taking the same frames in arrival order, and no frame ends
// after the busy period it arrived in.
TEST_CASE("a stage is work-conserving whatever the order of its reservations", "[sim]") {
  std::mt19937_64 rng(19);
  for (int round = 0; round < 200; ++round) {
    struct Job {
      Nanos arrive, work;
    };
    std::vector<Job> jobs(1 + rng() % 40);
    for (auto& j : jobs) j = {static_cast<Nanos>(rng() % 2'000), static_cast<Nanos>(rng() % 100)};
    Stage s;
    std::vector<Nanos> done;
    for (const auto& j : jobs) done.push_back(s.serve(0, j.arrive, j.work));

    std::vector<Job> fifo = jobs;
    std::stable_sort(fifo.begin(), fifo.end(),
                     [](const Job& a, const Job& b) { return a.arrive < b.arrive; });
    struct Period {
      Nanos start, end;
    };
    std::vector<Period> periods;
    Nanos free_at = 0, work = 0;
    for (const auto& j : fifo) {
      if (periods.empty() || j.arrive > free_at) periods.push_back({j.arrive, j.arrive});
      free_at = std::max(free_at, j.arrive) + j.work;
      periods.back().end = free_at;
      work += j.work;
    }
    INFO("round " << round);
    CHECK(*std::max_element(done.begin(), done.end()) == free_at);
    CHECK(s.busy_ns() == work);
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      CHECK(done[i] >= jobs[i].arrive + jobs[i].work);
      for (const auto& p : periods) {
        if (jobs[i].arrive >= p.start && jobs[i].arrive <= p.end) CHECK(done[i] <= p.end);
      }
    }
  }
}

TEST_CASE("a stage forgets reservations that ended: its memory does not grow with time", "[sim]") {
  Stage s;
  std::size_t most = 0;
  for (Nanos now = 0; now < 10'000'000; now += 1'000) {
    s.serve(now, now + 500, 100); // one reservation ahead, each millisecond
    s.serve(now, now, 50);
    most = std::max(most, s.reservations());
  }
  CHECK(most <= 3);
}
