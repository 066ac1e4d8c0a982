// The forked-child runner (experiment/child_run.hpp) with real children: a result comes back
// exactly, an exception's text comes back, a crash is named by its signal, a child that exits
// without a report is a failure, and a caller's exception while waiting kills the child.
#include "ivmc/experiment/child_run.hpp"

#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

using namespace ivmc::experiment;

TEST_CASE("a child's result comes back exactly", "[child_run]") {
  RunResult sent;
  sent.metrics = {{"x", 1.0 / 7.0}, {"pid", 0}};
  sent.events = 42;
  sent.wall_s = 1.5;
  sent.summary = "from the child\n";
  const pid_t parent = ::getpid();
  const RunResult got = run_in_child([&] {
    RunResult r = sent;
    r.metrics[1].value = ::getpid() == parent ? -1 : 1; // it ran in another process
    return r;
  });
  CHECK(got.metrics[0] == sent.metrics[0]);
  CHECK(got.metrics[1].value == 1);
  CHECK(got.events == 42);
  CHECK(got.wall_s == 1.5);
  CHECK(got.summary == "from the child\n");
}

TEST_CASE("a child's exception comes back as its text", "[child_run]") {
  CHECK_THROWS_WITH(run_in_child([]() -> RunResult { throw std::runtime_error("no VM named x"); }),
                    "the run failed: exited with status 1: no VM named x");
}

TEST_CASE("a child killed by a signal is reported by the signal's name", "[child_run]") {
  CHECK_THROWS_WITH(run_in_child([]() -> RunResult {
                      ::raise(SIGSEGV);
                      return {};
                    }),
                    Catch::StartsWith("the run failed: killed by signal " +
                                      std::to_string(SIGSEGV) + " (SIGSEGV: "));
  CHECK_THROWS_WITH(run_in_child([]() -> RunResult { std::abort(); }),
                    Catch::Contains("(SIGABRT: "));
}

TEST_CASE("a child that exits without a report has failed", "[child_run]") {
  CHECK_THROWS_WITH(run_in_child([]() -> RunResult { ::_exit(0); }),
                    "the run failed: exited with status 0 without sending a result");
  CHECK_THROWS_WITH(run_in_child([]() -> RunResult { ::_exit(7); }),
                    "the run failed: exited with status 7 without sending a result");
}

TEST_CASE("an exception from the waiting caller kills the child", "[child_run]") {
  const auto t0 = std::chrono::steady_clock::now();
  int calls = 0;
  CHECK_THROWS_WITH(run_in_child(
                        []() -> RunResult {
                          std::this_thread::sleep_for(std::chrono::seconds(60));
                          return {};
                        },
                        [&] {
                          if (++calls == 3) throw std::runtime_error("interrupted");
                        }),
                    "interrupted");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
}

TEST_CASE("ChildRun kills and reaps a child still running when dropped", "[child_run]") {
  pid_t pid = 0;
  {
    ChildRun child([]() -> RunResult {
      std::this_thread::sleep_for(std::chrono::seconds(60));
      return {};
    });
    pid = child.pid();
    CHECK(::kill(pid, 0) == 0);
  }
  CHECK(::kill(pid, 0) == -1); // reaped: no such process
}
