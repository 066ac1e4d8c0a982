// The results schema (experiment/results.hpp) and the child report's one encoding
// (experiment/child_run.hpp) without any process: metric names by workload kind, a backend's
// partial measures as NaN, the report's round trip (any bytes in names and texts), and a cut
// report refused. Where a check is reported (issue_at).
#include "ivmc/experiment/child_run.hpp"
#include "ivmc/experiment/load.hpp"
#include "ivmc/experiment/results.hpp"
#include "ivmc/experiment/summary.hpp"

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <cmath>
#include <limits>
#include <map>
#include <string>

using namespace ivmc;
using namespace ivmc::experiment;

TEST_CASE("metric names follow the workloads' kinds and the percentiles", "[results]") {
  Scenario s;
  s.vms = {{"a", 0, 1024, 0}, {"b", 1, 1024, 0}};
  s.workloads.push_back({WorkloadKind::udp_stream, "a", "b", 1024, 0, -1, 0, 0});
  s.workloads.push_back({WorkloadKind::tcp_rr, "b", "a", 64, 0, -1, 0, 0});
  s.latency_percentiles = {50, 99.9};
  const auto names = metric_names(s);
  REQUIRE(names.size() >= 9);
  CHECK(names[0] == "w0_mbps");
  CHECK(names[1] == "w0_messages_per_s");
  CHECK(names[2] == "w0_latency_p50_us");
  CHECK(names[3] == "w0_latency_p99.9_us");
  CHECK(names[4] == "w0_local_share");
  CHECK(names[5] == "w1_transactions_per_s");
  CHECK(names[6] == "w1_rtt_p50_us");
  CHECK(names[7] == "w1_rtt_p99.9_us");
  CHECK(names[8] == "w1_local_share");
  CHECK(names.back() == "migration_s_mean");
  CHECK(std::count(names.begin(), names.end(), "race_pending_data_migration_out") == 1);
}

TEST_CASE("schema_metrics puts NaN where a backend has no measure, and refuses unknown names",
          "[results]") {
  Scenario s;
  const auto names = metric_names(s);
  const auto m = schema_metrics(s, {{"sends", 12}, {"lost_bytes", 0}});
  REQUIRE(m.size() == names.size());
  for (std::size_t i = 0; i < m.size(); ++i) {
    INFO(names[i]);
    CHECK(m[i].name == names[i]);
    if (names[i] == "sends")
      CHECK(m[i].value == 12);
    else if (names[i] == "lost_bytes")
      CHECK(m[i].value == 0);
    else
      CHECK(std::isnan(m[i].value));
  }
  CHECK_THROWS_AS(schema_metrics(s, {{"send", 1}}), std::logic_error);
}

TEST_CASE("a child's report round-trips exactly, whatever bytes it holds", "[child_run]") {
  RunResult r;
  r.metrics = {{"plain", 1.0 / 3.0},
               {"with, comma \"and\" 12:colon,", -0.0},
               {std::string("nul\0byte", 8), 1e300},
               {"inf", std::numeric_limits<double>::infinity()},
               {"", 5e-324}};
  r.events = 18'446'744'073'709'551'615ull;
  r.wall_s = 0.125;
  r.summary = "line one\nline two: 3:x,\n";
  const auto bytes = encode_result(r);
  const auto back = decode_report(bytes);
  CHECK(back.complete);
  CHECK(back.ok);
  CHECK(back.result == r);
  CHECK(std::signbit(back.result.metrics[1].value)); // -0.0 stays negative

  RunResult with_nan;
  with_nan.metrics = {{"unmeasured", std::numeric_limits<double>::quiet_NaN()}};
  const auto nan_back = decode_report(encode_result(with_nan));
  REQUIRE(nan_back.ok);
  CHECK(std::isnan(nan_back.result.metrics[0].value));

  const auto err = decode_report(encode_error("boom: 3:x,\nsecond line"));
  CHECK(err.complete);
  CHECK(!err.ok);
  CHECK(err.error == "boom: 3:x,\nsecond line");
}

TEST_CASE("a report cut short or malformed is not taken for a result", "[child_run]") {
  RunResult r;
  r.metrics = {{"a", 1}, {"b", 2}};
  r.summary = "s";
  const auto bytes = encode_result(r);
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    INFO("cut at " << cut);
    CHECK(!decode_report(bytes.substr(0, cut)).ok);
  }
  CHECK(!decode_report("2:ok,1:9,end").ok);                         // count beyond the items
  CHECK(!decode_report("2:ok,1:1,1:a,3:one,1:0,1:0,0:,3:end,").ok); // a value that is no number
  CHECK(!decode_report("99999999999999999999:ok,").ok);
  const auto cut_error = decode_report(encode_error("half").substr(0, 12));
  CHECK(!cut_error.complete);
}

TEST_CASE("exit statuses are described for people, signals by name", "[child_run]") {
  CHECK(describe_exit(W_EXITCODE(3, 0)) == "exited with status 3");
  CHECK(describe_exit(SIGSEGV) ==
        "killed by signal " + std::to_string(SIGSEGV) + " (SIGSEGV: Segmentation fault)");
  CHECK(describe_exit(SIGKILL).find("(SIGKILL: ") != std::string::npos);
}

TEST_CASE("issue_at names the line that set a key, else the item's line, else the key path",
          "[results]") {
  const Scenario s = parse_scenario(R"(duration_s = 2
[channel]
ring_kib = 64
[[vm]]
name = "a"
host = 0
[[vm]]
name = "b"
host = 0
[[workload]]
from = "a"
to = "b"
)",
                                    "i.toml");
  const auto ring = issue_at(s, "channel.ring_kib", "too small");
  CHECK(ring.where == "i.toml:3");
  CHECK(ring.what == "channel.ring_kib: too small");
  const auto item = issue_at(s, "workload[0]", "not played");
  CHECK(item.where == "i.toml:10");
  CHECK(item.what == "workload[0]: not played");
  const auto unset = issue_at(s, "membership.period_ms", "no line");
  CHECK(unset.where == "membership.period_ms");
  CHECK(unset.what == "no line");
}

TEST_CASE("the sweep summary: per point, the seeds and mean ± the 95% t interval", "[results]") {
  using Row = std::map<std::string, std::string>;
  const std::vector<Row> rows = {
      {{"point", "0"}, {"seed", "1"}, {"p", "a"}, {"stream_mbps", "10"}, {"race_exposure", "0"}},
      {{"point", "0"}, {"seed", "2"}, {"p", "a"}, {"stream_mbps", "12"}, {"race_exposure", "0"}},
      {{"point", "0"}, {"seed", "3"}, {"p", "a"}, {"stream_mbps", "14"}, {"race_exposure", "0"}},
      {{"point", "1"}, {"seed", "1"}, {"p", "b"}, {"stream_mbps", "5"}, {"race_exposure", "0"}},
  };
  const std::string table = experiment::summary_table(rows, {"p"});
  INFO(table);
  // mean 12, sd 2, n 3: 4.303 * 2 / sqrt(3) = 4.97.
  CHECK(table.find("0      a  3      12 ± 5") != std::string::npos);
  CHECK(table.find("1      b  1      5\n") != std::string::npos); // one seed: the mean alone
  CHECK(table.rfind("point  p  seeds  stream_mbps", 0) == 0);
  CHECK(table.find("race_exposure") == std::string::npos); // all zero: left out
  CHECK(experiment::summary_table({}, {}).empty());
  CHECK(experiment::t975(1) == Approx(12.706));
  CHECK(experiment::t975(30) == Approx(2.042));
  CHECK(experiment::t975(1000) == Approx(1.96));
}
