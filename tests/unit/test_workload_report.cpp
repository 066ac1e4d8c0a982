// The measured path counters of the checked workloads (backends/posix/workload.hpp): what a
// workload sent on a ring and on a frame path, counted where the frames went, carried on its
// report line and read back from a line that another machine wrote (hostile input). In
// process: a ring in heap memory, a frame path in a queue.
#include "ivmc/posix/workload.hpp"

#include "../support/local_pair.hpp"
#include "../support/local_platform.hpp"
#include "../support/queue_path.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <thread>

using namespace ivmc;
using namespace ivmc::test;

namespace {

constexpr Nanos kSecond = 1'000'000'000;

// A report line as an agent prints it, with one field's value replaced by `value`.
posix::ReportFields line_with(const std::string& key, const std::string& value) {
  posix::Report r;
  r.mode = "send";
  r.ok = true;
  r.paths = {7, 8, 1};
  auto fields = posix::parse_report(r.line());
  REQUIRE(fields);
  (*fields)[key] = value;
  return *fields;
}

} // namespace

TEST_CASE("a report line carries its measured path counters, and they read back exactly",
          "[posix][workload]") {
  posix::Report r;
  r.mode = "ping";
  r.ok = true;
  r.paths = {123456789012345, 42, 3};
  r.extra = " w=1";
  const auto fields = posix::parse_report(r.line());
  REQUIRE(fields);
  CHECK(fields->at("frames_local") == "123456789012345");
  const auto counters = posix::parse_path_counters(*fields);
  REQUIRE(counters);
  CHECK(counters->frames_local == 123456789012345);
  CHECK(counters->frames_remote == 42);
  CHECK(counters->channels_opened == 3);
}

TEST_CASE("path counters from another machine are refused unless they are plain decimals",
          "[posix][workload]") {
  for (const char* key : {"frames_local", "frames_remote", "channels_opened"}) {
    INFO(key);
    CHECK(posix::parse_path_counters(line_with(key, "0")));
    CHECK(posix::parse_path_counters(line_with(key, "999999999999999"))); // 15 digits
    for (const char* bad :
         {"", "-1", "+1", "1e3", "0x10", " 1", "1 ", "1.0", "nan", "inf",
          "1000000000000000" /* 16 digits */, "18446744073709551617", "5 frames_remote=0"}) {
      INFO("value '" << bad << "'");
      CHECK_FALSE(posix::parse_path_counters(line_with(key, bad)));
    }
    auto missing = line_with(key, "1");
    missing.erase(key);
    CHECK_FALSE(posix::parse_path_counters(missing));
  }
  // A quoted value with a space reaches the map whole; it is still not a number.
  const auto quoted = posix::parse_report(
      "IVMC-RESULT mode=send ok=1 frames_local=\"5 6\" frames_remote=0 channels_opened=1");
  REQUIRE(quoted);
  CHECK_FALSE(posix::parse_path_counters(*quoted));
}

TEST_CASE("a stream over a ring counts the ring's own frames on the sender, none on the receiver",
          "[posix][workload]") {
  SteadyClock clock;
  LocalPair pair(clock);
  posix::WorkloadOptions o;
  o.bytes = 100 * 1000 + 123; // 101 messages, the last one short
  o.message = 1000;
  o.timeout = 10 * kSecond;
  posix::Report sent;
  std::thread sender([&] { sent = posix::stream_send(*pair.tx, o); });
  const posix::Report got = posix::stream_recv(*pair.rx, o);
  sender.join();
  REQUIRE(sent.ok);
  REQUIRE(got.ok);
  CHECK(sent.paths.frames_local == 101);
  CHECK(sent.paths.frames_remote == 0);
  CHECK(sent.paths.channels_opened == 1);
  CHECK(got.paths.frames_local == 0); // it received 101 frames and sent none
  CHECK(got.paths.frames_remote == 0);
  CHECK(got.paths.channels_opened == 1);
  // The line says the same.
  const auto counters = posix::parse_path_counters(*posix::parse_report(sent.line()));
  REQUIRE(counters);
  CHECK(counters->frames_local == 101);
}

TEST_CASE("round trips over a ring count each side's frames: the requests and the replies",
          "[posix][workload]") {
  SteadyClock clock;
  LocalPair pair(clock);
  posix::WorkloadOptions o;
  o.count = 37;
  o.message = 64;
  o.timeout = 10 * kSecond;
  posix::Report replies;
  std::thread echo([&] {
    posix::WorkloadOptions e = o;
    e.count = 0; // until the pinger closes
    replies = posix::echo(*pair.rx, e);
  });
  const posix::Report pings = posix::ping(*pair.tx, o);
  echo.join();
  REQUIRE(pings.ok);
  REQUIRE(replies.ok);
  CHECK(pings.paths.frames_local == 37);
  CHECK(replies.paths.frames_local == 37);
  CHECK(pings.paths.frames_remote + replies.paths.frames_remote == 0);
}

TEST_CASE("a stream over a frame path counts the frames the path accepted, as remote",
          "[posix][workload]") {
  QueuePath queue;
  posix::WorkloadOptions o;
  o.bytes = 10 * 4096;
  o.message = 4096;
  o.timeout = kSecond;
  posix::FrameWorkloadPath out(queue);
  const posix::Report sent = posix::stream_send(out, o); // the queue holds them all
  posix::FrameWorkloadPath in(queue);
  const posix::Report got = posix::stream_recv(in, o);
  REQUIRE(sent.ok);
  REQUIRE(got.ok);
  CHECK(sent.paths.frames_remote == 10);
  CHECK(sent.paths.frames_local == 0);
  CHECK(sent.paths.channels_opened == 0); // no ring
  CHECK(got.paths.frames_remote == 0);

  // A path that refuses the frames: nothing counted as sent.
  BreakablePath broken(queue);
  broken.break_now();
  posix::FrameWorkloadPath refused(broken);
  const posix::Report failed = posix::stream_send(refused, o);
  CHECK_FALSE(failed.ok);
  CHECK(failed.paths.frames_remote == 0);
}
