// The real backends' results (backends/guest_results): which path each workload took, how many
// frames went each way and how many rings were opened come from the counters the agents
// measured and printed on their report lines, never from the plan; a line without valid
// counters (another machine wrote it) gives NaN, never a guess. No guest runs here: the
// report lines are made as the agents make them.
#include "ivmc/guest_results/guest_results.hpp"

#include "ivmc/experiment/load.hpp"
#include "ivmc/posix/workload.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <string>
#include <vector>

using namespace ivmc;

namespace {

experiment::Scenario pair_scenario() {
  // w0 a -> b stream, w1 a -> c stream, w2 a -> b rr, w3 a -> c rr; a and b share host 0.
  return experiment::load_scenario(IVMC_SOURCE_DIR "/scenarios/examples/kvm_pair.toml");
}

// One agent's report line, parsed as the launcher parses it.
posix::ReportFields report(const char* mode, posix::PathCounters paths) {
  posix::Report r;
  r.mode = mode;
  r.ok = true;
  r.bytes = 4096u * 4096u;
  r.messages = paths.frames_local + paths.frames_remote;
  r.elapsed = 1'000'000'000;
  r.rtt_mean = 100'000;
  r.paths = paths;
  return *posix::parse_report(r.line());
}

// What kvm_pair's agents measure when every workload takes its planned path: 4096 stream
// frames, 1000 round trips (a request and a reply each).
std::vector<guest_results::GuestWorkloadOutcome> as_planned() {
  return {
      {report("send", {4096, 0, 1}), report("recv", {0, 0, 1}), true},
      {report("send", {0, 4096, 0}), report("recv", {0, 0, 0}), false},
      {report("ping", {1000, 0, 1}), report("echo", {1000, 0, 1}), true},
      {report("ping", {0, 1000, 0}), report("echo", {0, 1000, 0}), false},
  };
}

struct Metrics {
  experiment::RunResult result;
  double operator()(const std::string& name) const {
    for (const experiment::Metric& m : result.metrics)
      if (m.name == name) return m.value;
    FAIL("no metric " << name);
    return 0;
  }
};

Metrics map(const std::vector<guest_results::GuestWorkloadOutcome>& outcomes) {
  return {guest_results::guest_results(pair_scenario(), outcomes, "test\n",
                                       std::chrono::steady_clock::now())};
}

} // namespace

TEST_CASE("the real backends' path metrics are the agents' measured counters", "[guest][results]") {
  const Metrics m = map(as_planned());
  CHECK(m("w0_local_share") == 1);
  CHECK(m("w1_local_share") == 0);
  CHECK(m("w2_local_share") == 1);
  CHECK(m("w3_local_share") == 0);
  CHECK(m("frames_local") == 4096 + 2000);
  CHECK(m("frames_remote") == 4096 + 2000);
  CHECK(m("sends") == 2 * (4096 + 2000));
  CHECK(m("channels_opened") == 2);
}

TEST_CASE("the plan does not decide which path a workload took: the counters do",
          "[guest][results]") {
  auto outcomes = as_planned();
  // The plan said channel for w0 and network for w1; the agents measured the opposite (a
  // backend that ignored its plan), and w2's pinger sent part of its requests over the network.
  outcomes[0] = {report("send", {0, 4096, 0}), report("recv", {0, 0, 0}), true};
  outcomes[1] = {report("send", {4096, 0, 1}), report("recv", {0, 0, 1}), false};
  outcomes[2] = {report("ping", {750, 250, 1}), report("echo", {750, 250, 1}), true};
  const Metrics m = map(outcomes);
  CHECK(m("w0_local_share") == 0);
  CHECK(m("w1_local_share") == 1);
  CHECK(m("w2_local_share") == 0.75);
  CHECK(m("frames_local") == 4096 + 1500);
  CHECK(m("frames_remote") == 4096 + 500 + 2000);
  CHECK(m("channels_opened") == 2); // w1's ring and w2's
  CHECK_THAT(m.result.summary, Catch::Contains("network (planned: channel)"));
  CHECK_THAT(m.result.summary, Catch::Contains("channel (planned: network)"));
  CHECK_THAT(m.result.summary, Catch::Contains("channel+network"));
}

TEST_CASE("a ring counts once, when both of its ends report opening it", "[guest][results]") {
  auto outcomes = as_planned();
  outcomes[0].to = report("recv", {0, 0, 0}); // the receiver never had the ring
  outcomes[2].from = report("ping", {1000, 0, 3});
  const Metrics m = map(outcomes);
  CHECK(m("channels_opened") == 1); // w0: min(1, 0); w2: min(3, 1)
}

TEST_CASE("missing or hostile path counters make the path metrics NaN, never a guess",
          "[guest][results]") {
  for (const char* bad : {"", "-4096", "4096.0", "4e3", "nan", "1000000000000000"}) {
    INFO("frames_remote='" << bad << "'");
    auto outcomes = as_planned();
    outcomes[1].from["frames_remote"] = bad;
    const Metrics m = map(outcomes);
    CHECK(std::isnan(m("w1_local_share")));
    CHECK(std::isnan(m("frames_local")));
    CHECK(std::isnan(m("frames_remote")));
    CHECK(std::isnan(m("sends")));
    CHECK(std::isnan(m("channels_opened")));
    CHECK(m("w0_local_share") == 1); // the other workloads' own shares stand
    CHECK(m("w3_local_share") == 0);
  }
  auto outcomes = as_planned();
  outcomes[2].to.erase("channels_opened"); // an agent that does not measure
  const Metrics m = map(outcomes);
  CHECK(m("w2_local_share") == 1); // the pinger's own counters are whole
  CHECK(std::isnan(m("channels_opened")));
  CHECK(std::isnan(m("frames_local")));
}
